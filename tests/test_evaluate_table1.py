"""Table 1 evaluation: exact sum-to-score on a single-FC model, split handling, CLI output."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
from torch import nn
from typer.testing import CliRunner

from tomocam.cli.main import app
from tomocam.errors import ClassError, InputError
from tomocam.evaluate.table1 import evaluate_model
from tomocam.models import load_checkpoint, register_architecture
from tomocam.simulate import Acquisition, Sampling, builtin_structures, open_dataset, simulate_subtomograms
from tomocam.train import train_model


@register_architecture("test-evaluate-single-fc")
def _single_fc(num_classes: int = 3, input_size: int = 16) -> nn.Module:
    """Conv -> relu -> max-pool (the CAM layer) -> one bias-free Linear: Respond-CAM sums to the score exactly."""
    model = nn.Sequential(OrderedDict(
        conv=nn.Conv3d(1, 4, 3, padding=1), relu=nn.ReLU(), pool=nn.MaxPool3d(4),
        flatten=nn.Flatten(), fc=nn.Linear(4 * (input_size // 4) ** 3, num_classes, bias=False),
    ))
    model.default_cam_layer = "pool"
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    shapes = builtin_structures(["shell", "rod", "disc"], voxel_size=20.0)
    simulate_subtomograms(shapes, root / "d.zarr", n_per_class=10, acquisition=Acquisition(snr=1.0),
                          sampling=Sampling(box=16, max_shift=1), seed=0, workers=1)
    ds = open_dataset(root / "d.zarr")
    train_model(ds, "test-evaluate-single-fc", epochs=2, batch_size=8, seed=0, device="cpu", out=root / "m.pt")
    model, meta = load_checkpoint(root / "m.pt")
    return root, ds, model, meta


def test_single_fc_model_has_exact_sum_to_score_for_respond_cam(trained):
    _, ds, model, meta = trained
    res = evaluate_model(model, meta, ds)
    assert res["layer"] == "pool" and res["split"] == "test" and res["n"] == 6
    assert res["respond"]["l1_mean"] < 1e-4 and res["respond"]["l1_std"] < 1e-4
    assert res["respond"]["tau_mean"] == pytest.approx(1.0) and res["respond"]["tau_std"] == pytest.approx(0.0)
    assert res["gradcam"]["l1_mean"] > 100 * res["respond"]["l1_mean"]  # Grad-CAM does not have the property
    # one bias-free Linear: R_c = y_c, so G_c - y_c = -Z * sum Cov and Grad-CAM's L1 is the mean |covariance term|
    assert res["identity"]["covariance_abs_mean"] == pytest.approx(res["gradcam"]["l1_mean"], rel=1e-4)
    assert res["identity"]["residual_max_rel"] < 1e-5
    assert 0 <= res["accuracy"] <= 1


def test_accuracy_matches_the_checkpoint_test_accuracy(trained):
    _, ds, model, meta = trained
    res = evaluate_model(model, meta, ds)
    assert res["accuracy"] == pytest.approx(meta.provenance["test_accuracy"])


def test_all_split_and_foreign_dataset(trained, tmp_path):
    root, ds, model, meta = trained
    assert evaluate_model(model, meta, ds, split="all")["n"] == 30
    shapes = builtin_structures(["shell", "rod", "disc"], voxel_size=20.0)
    other = open_dataset(simulate_subtomograms(shapes, tmp_path / "o.zarr", n_per_class=4,
                                               sampling=Sampling(box=16), seed=1, workers=1))
    with pytest.raises(InputError, match="not the one the model was trained on"):
        evaluate_model(model, meta, other)
    assert evaluate_model(model, meta, other, split="all")["n"] == 12
    wrong = open_dataset(simulate_subtomograms(shapes[:2], tmp_path / "w.zarr", n_per_class=2,
                                               sampling=Sampling(box=16), seed=1, workers=1))
    with pytest.raises(ClassError):
        evaluate_model(model, meta, wrong, split="all")


def test_cli_json_and_table(trained):
    root, _, _, _ = trained
    result = CliRunner().invoke(app, ["evaluate", "table1", str(root / "m.pt"), str(root / "d.zarr"), "--json",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["respond"]["tau_mean"] == pytest.approx(1.0) and data["n"] == 6
    table = CliRunner().invoke(app, ["evaluate", "table1", str(root / "m.pt"), str(root / "d.zarr"), "--device", "cpu"])
    assert table.exit_code == 0 and "Respond-CAM" in table.output and "Kendall" in table.output
    assert "identity holds to" in table.output and data["identity"]["residual_max"] < 1e-3
