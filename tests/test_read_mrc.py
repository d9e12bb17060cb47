"""MRC reading: lazy memory map, axis order, modes, voxel size and the errors for unusable files."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from tomocam.errors import InputError
from tomocam.read import check_finite, open_tomogram


def _write(path: Path, data: np.ndarray, voxel_size: float = 5.0) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel_size
    return path


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.float16, np.float32])
def test_supported_modes_read_as_a_lazy_memory_map(tmp_path, dtype):
    data = (np.arange(4 * 5 * 6) % 100).reshape(4, 5, 6).astype(dtype)
    tomo = open_tomogram(_write(tmp_path / "t.mrc", data))
    assert tomo.shape == (4, 5, 6) and tomo.voxel_size == (5.0, 5.0, 5.0)
    arr = tomo.array()
    assert isinstance(arr.base if arr.base is not None else arr, np.memmap) or isinstance(arr, np.memmap)
    np.testing.assert_array_equal(np.asarray(arr), data)


def test_non_standard_axis_order_is_reordered_to_zyx(tmp_path):
    zyx = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)  # z=3, y=4, x=5
    # store with columns = z, rows = x, sections = y: file array is (y, x, z)
    path = _write(tmp_path / "t.mrc", np.ascontiguousarray(zyx.transpose(1, 2, 0)))
    with mrcfile.open(path, mode="r+") as mrc:
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 1, 2
    tomo = open_tomogram(path)
    assert tomo.shape == (3, 4, 5)
    np.testing.assert_array_equal(np.asarray(tomo.array()), zyx)


def test_voxel_size_override_and_unset_header(tmp_path):
    path = _write(tmp_path / "t.mrc", np.zeros((4, 4, 4), np.float32), voxel_size=0.0)
    with pytest.raises(InputError, match="--voxel-size"):
        open_tomogram(path)
    assert open_tomogram(path, voxel_size=7.5).voxel_size == (7.5, 7.5, 7.5)
    with pytest.raises(InputError, match="implausible"):
        open_tomogram(path, voxel_size=1e6)


def test_not_an_mrc_truncated_and_2d_are_input_errors(tmp_path):
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"not an mrc" * 200)
    with pytest.raises(InputError, match="cannot be read as an MRC"):
        open_tomogram(junk)
    good = _write(tmp_path / "t.mrc", np.zeros((8, 8, 8), np.float32))
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(InputError, match="truncated"):
        open_tomogram(cut)
    flat = _write(tmp_path / "flat.mrc", np.zeros((8, 8), np.float32))
    with pytest.raises(InputError, match="not a 3-D volume"):
        open_tomogram(flat)
    with pytest.raises(InputError, match="does not exist"):
        open_tomogram(tmp_path / "missing.mrc")


def test_check_finite_reports_the_first_bad_voxel(tmp_path):
    data = np.zeros((4, 5, 6), np.float32)
    tomo = open_tomogram(_write(tmp_path / "t.mrc", data))
    block = data.copy()
    check_finite(block, tomo, (0, 0, 0))
    block[1, 2, 3] = np.inf
    with pytest.raises(InputError, match=r"\(z, y, x\) = \(11, 2, 13\)"):
        check_finite(block, tomo, (10, 0, 10))
