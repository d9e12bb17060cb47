"""The in-memory particle table: voxels <-> angstrom on tomocam's grid, tomogram descriptions, class checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tomocam.errors import InputError
from tomocam.particles import COLUMNS, TomogramInfo, check_classes, from_voxels, particle_table, to_voxels
from tomocam.particles.table import check_table, euler_angles, rotation_matrices


def test_voxel_i_lies_at_i_times_the_voxel_size():
    tomo = TomogramInfo("t", (4, 5, 6), (2.0, 3.0, 4.0))  # z, y, x
    frame = from_voxels(tomo, ["a", "b"], [(0, 0, 0), (1, 2, 3.5)], [0.5, 1.0])
    assert list(frame.columns) == list(COLUMNS)
    np.testing.assert_allclose(frame[["x", "y", "z"]].to_numpy(), [[0, 0, 0], [14.0, 6.0, 2.0]])
    np.testing.assert_allclose(to_voxels(frame, tomo.voxel_size), [[0, 0, 0], [1, 2, 3.5]])


def test_tomogram_info_checks_its_sizes():
    assert TomogramInfo("t", (1, 2, 3), 5).voxel_size == (5.0, 5.0, 5.0)
    with pytest.raises(InputError, match="three sizes"):
        TomogramInfo("t", (1, 2), 5.0)
    with pytest.raises(InputError, match="three sizes"):
        TomogramInfo("t", (1, 2, 3), 0.0)
    with pytest.raises(InputError, match="one voxel size"):
        _ = TomogramInfo("t", (1, 2, 3), (1.0, 1.0, 2.0)).isotropic_voxel_size


def test_check_table_and_classes():
    frame = particle_table("t", ["a", "b"], [[1, 2, 3], [4, 5, 6]])
    assert frame["score"].isna().all()
    with pytest.raises(InputError, match=r"\['b'\]"):
        check_classes(frame, ["a", "c"], "'x.csv'")
    with pytest.raises(InputError, match=r"lacks columns \['tomogram'\]"):
        check_table(frame.drop(columns="tomogram"), "'x.csv'")
    with pytest.raises(InputError, match="row 1"):
        check_table(frame.assign(y=[1.0, np.inf]), "'x.csv'")
    extra = check_table(pd.concat([frame.assign(note="n")[["note"]], frame], axis=1), "'x'")
    assert list(extra.columns) == [*COLUMNS, "note"]


def test_euler_angles_invert_rotation_matrices():
    angles = np.random.default_rng(1).uniform([-180, 1, -180], [180, 179, 180], size=(50, 3))
    np.testing.assert_allclose(euler_angles(rotation_matrices(angles)), angles, atol=1e-9)
    np.testing.assert_allclose(euler_angles(np.eye(3)[None]), [[0.0, 0.0, 0.0]])  # no warning, no negative zero
