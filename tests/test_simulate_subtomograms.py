"""Subtomogram datasets: reproducibility, independence of worker count, labels, on-disk format."""

from __future__ import annotations

import math

import numpy as np
import pytest
import zarr

from tomocam.errors import InputError, OutputError
from tomocam.simulate import Acquisition, Sampling, builtin_structures, open_dataset, simulate_subtomograms
from tomocam.simulate.dataset import ATTR_KEY


@pytest.fixture(scope="module")
def shapes():
    return builtin_structures(["shell", "rod", "ring"], voxel_size=20.0)  # small templates (~14^3)


def _simulate(shapes, path, **kw):
    args = dict(n_per_class=3, acquisition=Acquisition(snr=1.0), sampling=Sampling(box=16, max_shift=2), seed=7,
                workers=1)
    args.update(kw)
    return open_dataset(simulate_subtomograms(shapes, path, **args))


def test_same_seed_same_data_for_any_worker_count(shapes, tmp_path):
    a = _simulate(shapes, tmp_path / "a.zarr", workers=1)
    b = _simulate(shapes, tmp_path / "b.zarr", workers=2)
    np.testing.assert_array_equal(a.volumes[:], b.volumes[:])
    np.testing.assert_array_equal(a.labels, b.labels)
    c = _simulate(shapes, tmp_path / "c.zarr", seed=8)
    assert not np.allclose(a.volumes[:], c.volumes[:])


def test_dataset_layout_labels_and_parameters(shapes, tmp_path):
    ds = _simulate(shapes, tmp_path / "d.zarr", sampling=Sampling(box=16, max_shift=2, background=True),
                   command="tomocam simulate subtomograms d.zarr")
    assert ds.classes == ["shell", "rod", "ring", "background"]
    assert ds.volumes.shape == (12, 16, 16, 16) and ds.volumes.dtype == np.float32
    np.testing.assert_array_equal(ds.labels, np.repeat(np.arange(4), 3))
    assert ds.voxel_size == 20.0
    assert ds.attrs["acquisition"]["snr"] == 1.0 and ds.attrs["acquisition"]["tilt_range"] == 60.0
    assert ds.attrs["sampling"]["background"] is True
    assert ds.attrs["sources"]["rod"] == "builtin:rod"
    assert ds.attrs["command"].startswith("tomocam simulate")
    assert np.all(np.isfinite(ds.volumes[:]))


def test_noise_free_boxes_hold_a_bright_centred_particle(shapes, tmp_path):
    ds = _simulate(shapes, tmp_path / "e.zarr", acquisition=Acquisition(snr=math.inf, ctf=False),
                   sampling=Sampling(box=16, max_shift=0))
    v = ds.volumes[:]  # (n, 16, 16, 16)
    centre = v[:, 5:11, 5:11, 5:11].mean(axis=(1, 2, 3))
    corner = v[:, :3, :3, :3].mean(axis=(1, 2, 3))
    assert np.all(centre > corner + 0.05)  # bright particle near the centre, "bright" polarity
    assert ds.attrs["polarity"] == "bright"


def test_background_boxes_have_particle_box_noise_level(shapes, tmp_path):
    ds = _simulate(shapes, tmp_path / "f.zarr", n_per_class=6,
                   sampling=Sampling(box=16, max_shift=2, distractors=0.0, background=True))
    std = ds.volumes[:].std(axis=(1, 2, 3))
    bg, fg = std[ds.labels == 3], std[ds.labels != 3]
    assert 0.2 < bg.mean() / fg.mean() < 1.5


def test_incomplete_dataset_is_refused(shapes, tmp_path):
    ds = _simulate(shapes, tmp_path / "g.zarr")
    group = zarr.open_group(str(ds.path), mode="r+")
    meta = dict(group.attrs[ATTR_KEY])
    meta["complete"] = False
    group.attrs[ATTR_KEY] = meta
    with pytest.raises(InputError, match="incomplete"):
        open_dataset(ds.path)


def test_existing_output_and_bad_inputs(shapes, tmp_path):
    _simulate(shapes, tmp_path / "h.zarr")
    with pytest.raises(OutputError, match="exists"):
        _simulate(shapes, tmp_path / "h.zarr")
    with pytest.raises(InputError):
        _simulate(shapes, tmp_path / "i.zarr", n_per_class=0)
    with pytest.raises(InputError):
        Sampling(box=16, max_shift=8)
    with pytest.raises(InputError, match="does not exist"):
        open_dataset(tmp_path / "nope.zarr")
    with pytest.raises(InputError, match="not a"):
        open_dataset(tmp_path)


def test_min_snr_draws_each_box_snr_log_uniformly_in_the_range(shapes):
    from tomocam.simulate.subtomograms import make_box

    acq, sampling = Acquisition(snr=4.0), Sampling(box=16, max_shift=0, min_snr=0.25)
    measured = []
    for i in range(40):
        observed, clean = make_box(shapes, i % 3, np.random.default_rng(i), sampling, acq, 20.0)
        measured.append(clean.var() / (observed - clean).var())
    log_snr = np.log(measured)
    assert log_snr.min() > np.log(0.25) - 0.3 and log_snr.max() < np.log(4.0) + 0.3  # inside the range (noise)
    assert log_snr.min() < np.log(0.5) and log_snr.max() > np.log(2.0)  # and spread over it
    assert abs(log_snr.mean()) < 0.35  # log-uniform on [ln 1/4, ln 4]: mean 0, std 0.8
    with pytest.raises(InputError, match="min SNR"):
        simulate_subtomograms(shapes, "unused.zarr", n_per_class=1, acquisition=Acquisition(snr=0.1),
                              sampling=Sampling(box=16, min_snr=0.2))
