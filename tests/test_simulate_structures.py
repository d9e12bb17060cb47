"""Structures: built-in shapes, MRC maps and atomic models become normalised templates."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from tomocam.errors import InputError
from tomocam.simulate import builtin_structures, load_structures, shape_names
from tomocam.simulate.structures import load_structure


def test_builtin_shapes_are_distinct_and_normalised():
    shapes = builtin_structures(voxel_size=10.0)
    assert [s.name for s in shapes] == shape_names() and len(shapes) >= 6
    for s in shapes:
        assert s.density.max() == pytest.approx(1.0) and s.density.min() >= 0
        assert 5 < s.radius <= 12  # fits a 40^3 box at 10 A with room for shifts
    flat = np.stack([s.density.ravel() / np.linalg.norm(s.density) for s in shapes])
    similarity = flat @ flat.T
    assert np.all(similarity[~np.eye(len(shapes), dtype=bool)] < 0.9)


def test_builtin_shape_scales_with_voxel_size():
    a, b = builtin_structures(["rod"], 10.0)[0], builtin_structures(["rod"], 20.0)[0]
    assert a.radius == pytest.approx(2 * b.radius, rel=0.15)


def test_unknown_shape_raises():
    with pytest.raises(InputError, match="unknown built-in shape"):
        builtin_structures(["banana"])


def _write_map(path, data, voxel):
    with mrcfile.new(path) as mrc:
        mrc.set_data(data.astype(np.float32))
        mrc.voxel_size = voxel


def test_map_is_resampled_normalised_and_named(tmp_path):
    z, y, x = np.mgrid[:30, :30, :20] - np.array([14.5, 14.5, 9.5])[:, None, None, None]
    blob = 50.0 + 200.0 * np.exp(-(x**2 + y**2 + z**2) / 20.0)
    _write_map(tmp_path / "blob.mrc", blob, 5.0)
    s = load_structure(tmp_path / "blob.mrc", 10.0)
    assert s.name == "blob" and s.voxel_size == 10.0
    assert s.density.shape == (15, 15, 15)  # 30 voxels of 5 A -> 15 of 10 A, padded to a cube
    assert s.density.max() == pytest.approx(1.0) and s.density.min() == 0.0
    assert s.density[0, 0, 0] == 0.0  # the constant offset 50 is removed


def test_atomic_model_becomes_density_along_the_right_axis(tmp_path):
    # a line of atoms along x: the density must extend along the last array axis (x), not along z
    lines = [
        f"ATOM  {i + 1:5d}  CA  ALA A{i + 1:4d}    {x:8.3f}{0.0:8.3f}{0.0:8.3f}  1.00 20.00           C"
        for i, x in enumerate(range(-40, 41, 4))
    ]
    (tmp_path / "line.pdb").write_text("\n".join(lines) + "\nEND\n")
    s = load_structure(tmp_path / "line.pdb", 5.0)
    assert s.name == "line" and s.density.ndim == 3 and len(set(s.density.shape)) == 1
    assert s.density.max() == pytest.approx(1.0)
    above = s.density > 0.5
    extent = [np.ptp(np.nonzero(above)[axis]) for axis in range(3)]  # z, y, x in voxels
    assert extent[2] >= 14 and extent[0] <= 4 and extent[1] <= 4  # 80 A = 16 voxels of 5 A along x


def test_folder_and_errors(tmp_path):
    data = np.zeros((10, 10, 10))
    data[4:6, 4:6, 4:6] = 1
    _write_map(tmp_path / "a.mrc", data, 10.0)
    _write_map(tmp_path / "b.mrc", data, 10.0)
    assert [s.name for s in load_structures([tmp_path], 10.0)] == ["a", "b"]
    with pytest.raises(InputError, match="does not exist"):
        load_structures([tmp_path / "c.mrc"], 10.0)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(InputError, match="unknown type"):
        load_structures([tmp_path / "x.txt"], 10.0)
    _write_map(tmp_path / "flat.mrc", np.ones((8, 8, 8)), 10.0)
    with pytest.raises(InputError, match="no positive signal"):
        load_structures([tmp_path / "flat.mrc"], 10.0)
    with pytest.raises(InputError, match="unique"):
        load_structures([tmp_path / "a.mrc", tmp_path / "a.mrc"], 10.0)
