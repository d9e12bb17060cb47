"""Extraction: a box at a particle is explain's tile there, voxel for voxel after the same preparation; the
dataset records where every box came from; faces, classes and the completion marker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tomocam
from tests.explain_models import write_mrc
from tomocam.errors import InputError, OutputError
from tomocam.extract import ExtractSettings, extract_dataset, parse_classes
from tomocam.models import normalise
from tomocam.models.inputs import model_inputs
from tomocam.particles import particle_table, write_particles
from tomocam.pipeline.config import ExplainConfig
from tomocam.pipeline.plan import make_plan
from tomocam.simulate import open_dataset
from tomocam.tile import TileGrid

MODEL_VOXEL, BOX = 20.0, 16


def _checkpoint(path, voxel_size=MODEL_VOXEL):
    torch.manual_seed(0)
    model = tomocam.models.cnn1(num_classes=2, input_size=BOX, fc_width=8)
    return tomocam.save_checkpoint(model, path, classes=["a", "b"], input_size=BOX, voxel_size=voxel_size)


def _table(path, rows):
    """A tomocam CSV particle table of ``rows`` (tomogram, class, x, y, z angstrom), written by the table room."""
    names, classes, *xyz = zip(*rows)
    write_particles(particle_table(list(names), list(classes), np.array(xyz).T), path, "csv")
    return path


# binned 2x, area-resampled, as is, interpolated
@pytest.mark.parametrize(("tomo_voxel", "invert"), [(10.0, False), (13.0, True), (20.0, False), (26.0, True)])
def test_a_box_at_a_particle_is_the_tile_explain_cuts_there(tmp_path, tomo_voxel, invert):
    rng = np.random.default_rng(0)
    volume = (rng.standard_normal((50, 60, 70)) + 3).astype(np.float32)
    tomo = write_mrc(tmp_path / "tomo.mrc", volume, voxel_size=tomo_voxel)
    model = _checkpoint(tmp_path / "m.pt")
    plan = make_plan(ExplainConfig(tomogram=str(tomo), output=str(tmp_path / "o.zarr"), model=str(model),
                                   invert=invert, device="cpu"), str(tmp_path / "o.zarr"))
    spec = plan.input_spec
    grid = TileGrid.build(volume.shape, spec.tile)  # explain's grid of these tiles, at its default stride
    picks = [tuple(int(s[i]) for s, i in zip(grid.starts, index)) for index in [(0, 0, 0), (1, 2, 1), (1, 1, 3)]]
    centres = [(np.asarray(s) + (np.asarray(spec.tile) - 1) / 2) * tomo_voxel for s in picks]  # z, y, x angstrom
    table = _table(tmp_path / "tomo_particles.csv", [("tomo", "a", c[2], c[1], c[0]) for c in centres])
    extract_dataset([tomo], [table], tmp_path / "d.zarr", ExtractSettings(box=BOX, voxel_size=MODEL_VOXEL,
                                                                          invert=invert), workers=1)
    ds = open_dataset(tmp_path / "d.zarr")
    ours = normalise(torch.from_numpy(np.asarray(ds.volumes[:])).unsqueeze(1), plan.normalisation)
    theirs = model_inputs(torch.from_numpy(volume), picks, spec)
    assert ours.shape == theirs.shape == (3, 1, BOX, BOX, BOX)
    assert torch.equal(ours, theirs)  # exact: the same voxels through the same preparation
    assert ds.attrs["tomograms"][0]["tile"] == list(spec.tile)


def test_the_dataset_records_where_each_box_came_from(tmp_path):
    import zarr

    volume = np.random.default_rng(1).standard_normal((40, 64, 64)).astype(np.float32)
    t1 = write_mrc(tmp_path / "TS_01.mrc", volume, voxel_size=10.0)
    t2 = write_mrc(tmp_path / "TS_02.mrc", volume[::-1].copy(), voxel_size=10.0)
    table = _table(tmp_path / "picks.csv", [
        ("TS_01", "ribosome", 300.0, 300.0, 200.0), ("TS_02", "80S", 320.0, 310.0, 190.0),
        ("TS_01", "membrane", 100.0, 500.0, 200.0), ("TS_02", "ribosome", 20.0, 20.0, 20.0),  # the last at a face
    ])
    settings = ExtractSettings(box=BOX, per_particle=3, max_shift=2, background="2", radius=150.0,
                               classes=parse_classes("ribosome,80S=ribosome,membrane=-"), seed=4)
    plans = extract_dataset([t1, t2], [table], tmp_path / "d.zarr", settings, workers=2, command="pytest")
    ds = open_dataset(tmp_path / "d.zarr")
    assert ds.classes == ["ribosome", "background"] and ds.attrs["command"] == "pytest"
    assert [p.skipped for p in plans] == [0, 3]
    assert ds.tomograms == ["TS_01", "TS_02"] and list(ds.box_tomograms) == ["TS_01"] * 5 + ["TS_02"] * 5
    origin = zarr.open_group(str(tmp_path / "d.zarr"), mode="r")["origin"]
    rows, centre = origin["row"][:], origin["centre"][:]
    assert list(rows) == [0, 0, 0, -1, -1, 1, 1, 1, -1, -1] and list(ds.labels) == [0, 0, 0, 1, 1] * 2
    particle = np.array([[300.0, 300.0, 200.0]] * 3 + [[320.0, 310.0, 190.0]] * 3)
    moved = centre[rows >= 0] - particle
    assert np.all(np.abs(moved) <= 2 * 10.0 + 5)  # at most 2 model voxels (20 A) plus half a voxel of rounding
    annotated = np.array([[300.0, 300.0, 200.0], [100.0, 500.0, 200.0]])  # TS_01's, the dropped class included
    bg = centre[:5][rows[:5] < 0]
    assert np.linalg.norm(bg[:, None] - annotated[None], axis=-1).min() > 150.0
    assert ds.attrs["n_per_class"] == {"ribosome": 6, "background": 4}
    assert ds.attrs["tomograms"][0]["tile"] == [BOX] * 3 and ds.voxel_size == 10.0  # the tomograms' voxel size
    # each box is the tomogram's tile at its recorded centre (no resampling at the tomograms' own voxel size)
    for i, vol in ((0, volume), (6, volume[::-1])):
        start = np.round(centre[i][::-1] / 10.0 - (BOX - 1) / 2).astype(int)
        np.testing.assert_array_equal(ds.volumes[i], vol[tuple(slice(a, a + BOX) for a in start)])


def test_an_interrupted_extraction_is_not_a_dataset_and_a_rerun_finishes_it(tmp_path, monkeypatch):
    import tomocam.extract.run as run

    volume = np.random.default_rng(5).standard_normal((20, 40, 40)).astype(np.float32)
    tomos = [write_mrc(tmp_path / f"t{i}.mrc", volume * (i + 1), voxel_size=10.0) for i in range(3)]
    table = _table(tmp_path / "t.csv", [(f"t{i}", c, x, 200.0, 100.0) for i in range(3)
                                        for c, x in (("a", 200.0), ("b", 100.0))])
    settings = ExtractSettings(box=BOX, per_particle=2, max_shift=2, seed=1)
    extract_dataset(tomos, [table], tmp_path / "whole.zarr", settings, workers=1)
    cut, calls = run.cut_boxes, []

    def failing(job, dataset):
        calls.append(job.name)
        if job.name == "t1" and len(calls) == 2:
            raise KeyboardInterrupt
        return cut(job, dataset)

    monkeypatch.setattr(run, "cut_boxes", failing)
    with pytest.raises(KeyboardInterrupt):
        extract_dataset(tomos, [table], tmp_path / "d.zarr", settings, workers=1)
    with pytest.raises(InputError, match="incomplete"):
        open_dataset(tmp_path / "d.zarr")
    with pytest.raises(OutputError, match="other inputs"):  # another plan does not finish it
        extract_dataset(tomos, [table], tmp_path / "d.zarr", ExtractSettings(box=BOX, seed=2), workers=1)
    extract_dataset(tomos, [table], tmp_path / "d.zarr", settings, workers=1)  # the same plan finishes it
    assert calls == ["t0", "t1", "t1", "t2"]  # t0 was not cut again
    whole, resumed = open_dataset(tmp_path / "whole.zarr"), open_dataset(tmp_path / "d.zarr")
    np.testing.assert_array_equal(np.asarray(whole.volumes[:]), np.asarray(resumed.volumes[:]))
    with pytest.raises(OutputError, match="finished dataset"):
        extract_dataset(tomos, [table], tmp_path / "d.zarr", settings, workers=1)


def test_an_ome_zarr_tomogram_gives_the_boxes_of_the_same_volume_as_mrc(tmp_path):
    import zarr

    volume = np.random.default_rng(3).standard_normal((30, 40, 44)).astype(np.float32)
    (tmp_path / "mrc").mkdir()
    mrc = write_mrc(tmp_path / "mrc" / "TS_01.mrc", volume, voxel_size=10.0)
    image = tmp_path / "ome" / "TS_01.ome.zarr"
    root = zarr.open_group(str(image), mode="w", zarr_format=3)
    root.create_array("0", data=volume, chunks=(8, 8, 8))
    axes = [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"]
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale",
                                                                                "scale": [10.0] * 3}]}]}]}
    table = _table(tmp_path / "t.csv", [("TS_01", "a", 200.0, 200.0, 150.0), ("TS_01", "b", 240.0, 180.0, 140.0)])
    settings = ExtractSettings(box=BOX, per_particle=2, max_shift=3, seed=2)
    for name, path in (("mrc", mrc), ("ome", image)):
        extract_dataset([path], [table], tmp_path / f"{name}.zarr", settings, workers=1)
    a, b = open_dataset(tmp_path / "mrc.zarr"), open_dataset(tmp_path / "ome.zarr")
    assert a.tomograms == b.tomograms == ["TS_01"] and len(a) == 4
    np.testing.assert_array_equal(np.asarray(a.volumes[:]), np.asarray(b.volumes[:]))
