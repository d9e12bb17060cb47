"""Whole tomograms with ground truth: placement, table, mask, files, reproducibility."""

from __future__ import annotations

import math

import mrcfile
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from tomocam.errors import InputError, OutputError
from tomocam.simulate import Acquisition, builtin_structures, simulate_tomogram, write_tomogram
from tomocam.simulate.tomogram import TABLE_COLUMNS


@pytest.fixture(scope="module")
def shapes():
    return builtin_structures(["shell", "rod", "tetramer"], voxel_size=10.0)


def test_particles_are_placed_where_the_table_says(shapes):
    sim = simulate_tomogram((60, 90, 90), shapes, 9, acquisition=Acquisition(snr=math.inf, ctf=False), seed=3)
    t = sim.table
    assert list(t.columns) == TABLE_COLUMNS and len(t) == 9
    assert sorted(t.class_name.unique()) == ["rod", "shell", "tetramer"]
    np.testing.assert_allclose(t.x_angstrom, t.x * 10.0)
    for _, row in t.iterrows():
        zyx = np.round([row.z, row.y, row.x]).astype(int)
        if row.class_name != "shell":  # solid particles: the mask at the centre carries the label
            patch = sim.mask[tuple(slice(c - 2, c + 3) for c in zyx)]
            assert (patch == row.class_index + 1).any()
        # the centre of mass of the particle's labelled voxels is at its centre
        near = np.argwhere(sim.mask == row.class_index + 1)
        near = near[np.linalg.norm(near - zyx, axis=1) < 12]
        np.testing.assert_allclose(near.mean(axis=0), [row.z, row.y, row.x], atol=1.5)
        r = Rotation.from_euler("ZYZ", [row.rot, row.tilt, row.psi], degrees=True).as_matrix()
        np.testing.assert_allclose(r.ravel(), row[["r11", "r12", "r13", "r21", "r22", "r23", "r31", "r32",
                                                   "r33"]].to_numpy(float), atol=1e-6)
    centres = t[["x", "y", "z"]].to_numpy()
    radii = np.array([shapes[k].radius for k in t.class_index])
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(t)) * 1e9
    assert np.all(dist >= radii[:, None] + radii[None, :])  # no overlaps


def test_orientation_in_table_matches_the_density(shapes):
    rod = builtin_structures(["rod"], 10.0)
    sim = simulate_tomogram((40, 40, 40), rod, 1, acquisition=Acquisition(snr=math.inf, ctf=False), seed=5)
    row = sim.table.iloc[0]
    pts = np.argwhere(sim.mask == 1)[:, ::-1].astype(float)  # (m, 3) x, y, z
    pts -= pts.mean(axis=0)
    axis = np.linalg.svd(pts, full_matrices=False)[2][0]  # principal axis of the rod
    expected = Rotation.from_euler("ZYZ", [row.rot, row.tilt, row.psi], degrees=True).apply([0, 0, 1])
    assert abs(axis @ expected) > 0.98  # the template rod lies along z


def test_same_seed_same_tomogram_and_noise_level(shapes):
    a = simulate_tomogram((40, 80, 80), shapes, 4, acquisition=Acquisition(snr=0.5), seed=1)
    b = simulate_tomogram((40, 80, 80), shapes, 4, acquisition=Acquisition(snr=0.5), seed=1)
    np.testing.assert_array_equal(a.volume, b.volume)
    pd.testing.assert_frame_equal(a.table, b.table)
    clean = simulate_tomogram((40, 80, 80), shapes, 4, acquisition=Acquisition(snr=math.inf), seed=1)
    measured = clean.volume.var() / (a.volume - clean.volume).var()
    assert measured == pytest.approx(0.5, rel=0.1)


def test_write_tomogram_files(shapes, tmp_path):
    sim = simulate_tomogram((30, 40, 50), shapes, 2, seed=0)
    paths = write_tomogram(sim, tmp_path / "tomo.mrc")
    with mrcfile.open(paths["tomogram"]) as mrc:
        assert mrc.data.shape == (30, 40, 50) and float(mrc.voxel_size.x) == pytest.approx(10.0)
        np.testing.assert_allclose(mrc.data, sim.volume)
    with mrcfile.open(paths["mask"]) as mrc:
        assert mrc.data.dtype == np.uint16  # MRC mode 6: unsigned labels, read alike by every program
        np.testing.assert_array_equal(mrc.data, sim.mask)
    table = pd.read_csv(paths["particles"])
    assert list(table.columns) == TABLE_COLUMNS and len(table) == 2
    with pytest.raises(OutputError, match="exists"):
        write_tomogram(sim, tmp_path / "tomo.mrc")


def test_impossible_requests_raise(shapes):
    with pytest.raises(InputError, match="could place only"):
        simulate_tomogram((30, 30, 30), shapes, 50, seed=0)
    with pytest.raises(InputError, match="too small"):
        simulate_tomogram((10, 100, 100), shapes, 1, seed=0)
    with pytest.raises(InputError):
        simulate_tomogram((10, 100), shapes, 1, seed=0)
