"""MRC export: maps reopen with mrcfile at the right shape, voxel size and origin, with the exact values."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
from store_builder import build_store, gaussian_blobs, write_tomogram

from tomocam.errors import ClassError, OutputError
from tomocam.store import open_store
from tomocam.store.space import VoxelSpace
from tomocam.write.export_mrc import export_store, write_mrc

SHAPE = (20, 24, 28)
CENTRE = (8, 10, 18)


@pytest.fixture
def store(tmp_path):
    vol = gaussian_blobs(SHAPE, [CENTRE], [3.0])
    tomo = write_tomogram(tmp_path / "tomo.mrc", vol, 7.5)
    with mrcfile.open(tomo, mode="r+") as mrc:
        mrc.header.origin = (100.0, 200.0, 300.0)  # x, y, z
    maps = np.stack([vol, -0.5 * vol, np.full(SHAPE, 0.25, np.float32)])
    path = build_store(tmp_path / "run.zarr", {"respond": maps, "gradcam": 2 * maps}, ["a", "b", "c"], 7.5, tomo)
    return open_store(path)


def test_heatmaps_and_labels_reopen_with_voxel_size_origin_and_values(store, tmp_path):
    out = export_store(store, tmp_path / "out", methods=["respond"], classes=["b"])
    assert [p.name for p in out] == ["run_respond_b_level0.mrc", "run_labels_level0.mrc"]
    with mrcfile.open(out[0], permissive=False) as mrc:
        assert mrc.data.shape == SHAPE and mrc.data.dtype == np.float32
        np.testing.assert_array_equal(mrc.data, store.heatmap("respond")[1])
        assert mrc.voxel_size.x == mrc.voxel_size.z == pytest.approx(7.5)
        assert (mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z) == (100.0, 200.0, 300.0)
        assert mrc.header.dmin == pytest.approx(-1.5, rel=1e-4) and mrc.header.dmax == pytest.approx(0.0, abs=1e-6)
        assert mrc.header.dmean == pytest.approx(float(mrc.data.mean()), rel=1e-5)
        assert mrc.header.rms == pytest.approx(float(mrc.data.std()), rel=1e-4)
    with mrcfile.open(out[1], permissive=False) as mrc:
        assert mrc.header.mode == 6 and mrc.data.dtype == np.uint16
        np.testing.assert_array_equal(mrc.data, store.labels(0)[:])
        assert mrc.data[CENTRE] == 1  # class a wins at the particle


def test_coarse_level_keeps_its_voxel_size_and_offset(store, tmp_path):
    (path,) = export_store(store, tmp_path, methods=["gradcam"], classes=["a"], level=1, labels=False)
    with mrcfile.open(path) as mrc:
        assert mrc.data.shape == tuple(s // 2 for s in SHAPE)
        assert mrc.voxel_size.y == pytest.approx(15.0)
        # level 1 voxel 0 is centred half a level-0 voxel (3.75 A) from level-0 voxel 0
        assert mrc.header.origin.x == pytest.approx(100.0 + 3.75)
        np.testing.assert_array_equal(mrc.data, store.heatmap("gradcam", 1)[0])


def test_write_mrc_streams_in_blocks_and_refuses_to_overwrite(tmp_path):
    vol = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    path = write_mrc(vol, tmp_path / "v.mrc", VoxelSpace((2.0, 3.0, 4.0)), block=(2, 4, 3))
    with mrcfile.open(path) as mrc:
        np.testing.assert_array_equal(mrc.data, vol)
        assert tuple(mrc.voxel_size.tolist()) == (4.0, 3.0, 2.0)  # x, y, z
    with pytest.raises(OutputError, match="exists already"):
        write_mrc(vol, path, VoxelSpace((1.0, 1.0, 1.0)))
    assert not list(tmp_path.glob("*.partial"))


def test_failure_midway_leaves_no_file_that_looks_complete(tmp_path):
    class Failing:
        shape, dtype, chunks = (4, 4, 4), np.dtype(np.float32), (2, 4, 4)

        def __getitem__(self, key):
            if key[0].start > 0:
                raise RuntimeError("read failed")
            return np.zeros((2, 4, 4), np.float32)

    with pytest.raises(RuntimeError):
        write_mrc(Failing(), tmp_path / "x.mrc", VoxelSpace((1.0, 1.0, 1.0)))
    assert list(tmp_path.iterdir()) == []


def test_unknown_class_is_a_class_error(store, tmp_path):
    with pytest.raises(ClassError, match="'zzz'.*a, b, c"):
        export_store(store, tmp_path, classes=["zzz"])


def test_cli_exports_beside_the_store(store, tmp_path):
    from typer.testing import CliRunner

    from tomocam.cli.main import app

    result = CliRunner().invoke(app, ["export", store.path, "-c", "a", "-m", "gradcam"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.glob("*.mrc") if p.name != "tomo.mrc")
    assert names == ["run_gradcam_a_level0.mrc", "run_labels_level0.mrc"]
    with mrcfile.open(tmp_path / "run_gradcam_a_level0.mrc") as mrc:
        np.testing.assert_array_equal(mrc.data, store.heatmap("gradcam")[0])
