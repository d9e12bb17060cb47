"""Training: the split, seeding, learning on a small noise-free set, the checkpoint it writes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tomocam.cli.main import app
from tomocam.errors import InputError
from tomocam.evaluate.splits import split_indices
from tomocam.models import load_checkpoint
from tomocam.simulate import Acquisition, Sampling, builtin_structures, open_dataset, simulate_subtomograms
from tomocam.train import train_model


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """Three clearly distinct shapes, noise-free with the wedge, 16^3 boxes at 20 A: 80 boxes per class."""
    path = tmp_path_factory.mktemp("train") / "small.zarr"
    shapes = builtin_structures(["shell", "rod", "disc"], voxel_size=20.0)
    simulate_subtomograms(shapes, path, n_per_class=80, acquisition=Acquisition(snr=math.inf),
                          sampling=Sampling(box=16, max_shift=1), seed=0, workers=1)
    return open_dataset(path)


@pytest.mark.slow
def test_training_learns_a_small_noise_free_set(small_dataset, tmp_path):
    out = tmp_path / "m.pt"
    result = train_model(small_dataset, "cnn2", epochs=6, batch_size=8, seed=0, device="cpu",
                         arch_kwargs={"fc_width": 32, "dropout": 0.1}, out=out, command="pytest")
    assert result.test_accuracy >= 0.75  # chance is 1/3
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    model, meta = load_checkpoint(out)
    assert meta.classes == ["shell", "rod", "disc"] and meta.input_size == 16 and meta.voxel_size == 20.0
    assert meta.normalisation == "zscore" and meta.polarity == "bright" and meta.cam_layer == "features.pool2"
    p = meta.provenance
    assert p["command"] == "pytest" and p["seed"] == 0 and p["epochs"] == 6
    assert p["test_accuracy"] == pytest.approx(result.test_accuracy)
    assert p["split"]["n_test"] == 48 and p["best_epoch"] == result.best_epoch
    # the saved weights are the best-validation ones: they reproduce the recorded validation accuracy
    assert result.history[p["best_epoch"] - 1]["val_accuracy"] == pytest.approx(p["val_accuracy"])


def test_same_seed_same_model(tmp_path):
    shapes = builtin_structures(["shell", "rod"], voxel_size=20.0)
    ds = open_dataset(simulate_subtomograms(shapes, tmp_path / "t.zarr", n_per_class=10, sampling=Sampling(box=16),
                                            seed=0, workers=1))
    kw = dict(epochs=2, batch_size=4, device="cpu", arch_kwargs={"fc_width": 16})
    a = train_model(ds, "cnn2", seed=5, **kw).model.state_dict()
    b = train_model(ds, "cnn2", seed=5, **kw).model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.slow
def test_time_limit_stops_after_the_epoch_in_which_it_runs_out(small_dataset, tmp_path):
    kw = dict(batch_size=16, seed=0, device="cpu", arch_kwargs={"fc_width": 16})
    limited = train_model(small_dataset, "cnn2", epochs=5, time_limit=1e-9, out=tmp_path / "t.pt", **kw)
    assert len(limited.history) == 1 and limited.best_epoch == 1
    _, meta = load_checkpoint(tmp_path / "t.pt")
    assert meta.provenance["epochs_run"] == 1 and meta.provenance["time_limit_s"] == 1e-9
    assert len(train_model(small_dataset, "cnn2", epochs=2, time_limit=3600, **kw).history) == 2


@pytest.mark.slow
def test_raw_normalisation_is_recorded_and_feeds_boxes_unchanged(small_dataset, tmp_path):
    result = train_model(small_dataset, "cnn2", epochs=1, batch_size=16, seed=0, device="cpu",
                         arch_kwargs={"fc_width": 16}, normalisation="raw", out=tmp_path / "raw.pt")
    model, meta = load_checkpoint(tmp_path / "raw.pt")
    assert meta.normalisation == "raw" and meta.provenance["normalisation"] == "raw"
    idx = split_indices(small_dataset.labels, 0).test
    x = torch.from_numpy(small_dataset.volumes.get_orthogonal_selection((idx,))).unsqueeze(1)
    test_acc = float((model(x).argmax(1).numpy() == small_dataset.labels[idx]).mean())
    assert test_acc == pytest.approx(result.test_accuracy)


def test_bad_arguments(small_dataset):
    with pytest.raises(InputError):
        train_model(small_dataset, epochs=0)
    with pytest.raises(InputError, match="init"):
        train_model(small_dataset, epochs=1, init="zeros")
    with pytest.raises(InputError, match="normalisation"):
        train_model(small_dataset, epochs=1, normalisation="none")
    with pytest.raises(InputError, match="time limit"):
        train_model(small_dataset, epochs=1, time_limit=0)


def test_cli_train_writes_checkpoint_and_refuses_overwrite(small_dataset, tmp_path):
    out = tmp_path / "cli.pt"
    args = ["train", str(small_dataset.path), "-o", str(out), "--epochs", "3", "--fc-width", "16",
            "--device", "cpu", "--threads", "1", "--time-limit", "1e-9", "--normalisation", "raw"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and out.is_file()
    _, meta = load_checkpoint(out)
    assert meta.provenance["command"].startswith("tomocam")
    assert meta.provenance["epochs_run"] == 1 and meta.provenance["time_limit_s"] == pytest.approx(6e-8)
    assert meta.normalisation == "raw"
    stats = meta.provenance["input_stats"]  # for explain's out-of-distribution warning
    assert stats["n"] == meta.provenance["split"]["n_fit"] and stats["skewness"][0] <= stats["skewness"][2]
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "exists" in str(again.exception)


def test_flips_keep_a_missing_wedge_symmetric_about_the_tilt_axis():
    from tomocam.simulate.acquisition import missing_wedge_mask
    from tomocam.train import flip_boxes

    n = 16  # flipping axis a of a box takes |F| at k to |F| at k with k_a negated (modulo n): any n
    wedge = _full_wedge(missing_wedge_mask((n, n, n), 60.0), n)  # (n, n, n) True where sampled
    rng = np.random.default_rng(0)
    spectrum = np.fft.fftn(rng.standard_normal((n, n, n))) * wedge
    boxes = torch.from_numpy(np.real(np.fft.ifftn(spectrum))[None, None].repeat(16, 0).astype(np.float32))
    flipped = flip_boxes(boxes, torch.Generator().manual_seed(0))
    assert not torch.equal(flipped, boxes)
    for box in flipped[:, 0].numpy():
        power = np.abs(np.fft.fftn(box))
        assert power[~wedge].max() < 1e-3 * power.max()  # nothing inside the missing wedge
    # a 90-degree turn about y (z <-> x) moves the wedge: the test above can fail
    turned = np.abs(np.fft.fftn(np.rot90(boxes[0, 0].numpy(), axes=(0, 2))))
    assert turned[~wedge].max() > 0.1 * turned.max()


def _full_wedge(half: np.ndarray, n: int) -> np.ndarray:
    """The wedge mask on the full FFT grid ``(n, n, n)`` from its real-FFT half ``(n, n, n // 2 + 1)``."""
    full = np.zeros((n, n, n), bool)
    full[..., : half.shape[-1]] = half
    kz, ky = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    for x in range(half.shape[-1], n):  # Hermitian symmetry: k -> -k
        full[..., x] = half[(-kz) % n, (-ky) % n, (n - x) % n]
    return full
