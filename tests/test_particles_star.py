"""RELION STAR tables: a hand-written RELION 5 file reads to hand-computed positions (RELION 5's centre
convention), RELION 3 / Warp voxel sizes come from every place such tables state them, and what is missing is
refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from tomocam.errors import InputError
from tomocam.particles import TomogramInfo, particle_table, read_particles, write_particles
from tomocam.particles.table import rotation_matrices

DATA = Path(__file__).parent / "data"
TOMOGRAMS = {"TS_01": TomogramInfo("TS_01", (100, 200, 300), 10.0), "TS_02": TomogramInfo("TS_02", (64, 64, 64), 7.5)}


def test_hand_written_relion5_file_reads_to_hand_computed_positions():
    frame = read_particles(DATA / "relion5_particles.star", tomograms=TOMOGRAMS, classes=["ribosome", "proteasome"])
    # x = centred + size_x * voxel / 2 (RELION 5: voxel = centred / pixel + size / 2), minus the origin shift
    expected = [
        (1500.0, 1000.0, 500.0),  # centred 0: voxel (150, 100, 50), just past the geometric middle (149.5, ...)
        (0.0, 0.0, 0.0),  # the first voxel
        (1525.5, 988.0, 507.0),
        (250.0, 260.0, 270.0),  # TS_02: 240 + (10, 20, 30)
        (235.0, 245.0, 230.0),  # 240 - origin (5, -5, 10)
    ]
    np.testing.assert_allclose(frame[["x", "y", "z"]].to_numpy(), expected)
    assert list(frame["tomogram"]) == ["TS_01"] * 3 + ["TS_02"] * 2
    assert list(frame["class"]) == ["ribosome", "proteasome", "ribosome", "proteasome", "ribosome"]
    np.testing.assert_allclose(frame["score"], [0.9, 0.8, 0.7, 0.6, 0.5])
    assert list(frame["class_index"]) == [0, 1, 0, 1, 0]


def test_relion5_write_matches_the_convention_and_reopens_in_starfile(tmp_path):
    frame = particle_table("TS_01", "a", [[1500.0, 1000.0, 500.0], [0.0, 0.0, 0.0]], [1.0, 2.0])
    path = write_particles(frame, tmp_path / "p.star", "relion5", tomograms=TOMOGRAMS)
    block = starfile.read(path)
    np.testing.assert_allclose(block[["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
                                      "rlnCenteredCoordinateZAngst"]].to_numpy(), [[0, 0, 0], [-1500, -1000, -500]])
    assert list(block["rlnTomoName"]) == ["TS_01", "TS_01"]
    assert list(block["tomocamClassName"]) == ["a", "a"]


def test_relion5_subtomogram_and_particle_angles_compose_as_relion_does(tmp_path):
    sub, part = (30.0, 40.0, 50.0), (-20.0, 100.0, 60.0)
    block = pd.DataFrame({"rlnTomoName": ["T"], "rlnCenteredCoordinateXAngst": [0.0],
                          "rlnCenteredCoordinateYAngst": [0.0], "rlnCenteredCoordinateZAngst": [0.0],
                          "rlnTomoSubtomogramRot": [sub[0]], "rlnTomoSubtomogramTilt": [sub[1]],
                          "rlnTomoSubtomogramPsi": [sub[2]], "rlnAngleRot": [part[0]], "rlnAngleTilt": [part[1]],
                          "rlnAnglePsi": [part[2]], "rlnOriginXAngst": [10.0], "rlnOriginYAngst": [0.0],
                          "rlnOriginZAngst": [0.0], "tomocamClassName": ["a"]})
    starfile.write({"particles": block}, tmp_path / "p.star")
    frame = read_particles(tmp_path / "p.star", tomograms={"T": TomogramInfo("T", (10, 10, 10), 1.0)})
    a_sub = rotation_matrices([sub])[0]
    np.testing.assert_allclose(rotation_matrices(frame[["rot", "tilt", "psi"]].to_numpy())[0],
                               a_sub @ rotation_matrices([part])[0], atol=1e-9)
    # ParticleSet::getPosition: position - A_subtomogram @ origin
    np.testing.assert_allclose(frame[["x", "y", "z"]].to_numpy()[0], 5.0 - a_sub @ [10.0, 0.0, 0.0], atol=1e-9)


def test_rotation_matrix_is_relions_euler_matrix():
    """RELION's Euler::anglesToMatrix3 (src/jaz/math/Euler_angles_relion.h), written out."""
    rng = np.random.default_rng(0)
    for rot, tilt, psi in rng.uniform(-180, 180, size=(20, 3)):
        p, t, c = np.radians([rot, tilt, psi])
        sp, cp, st, ct, sc, cc = np.sin(p), np.cos(p), np.sin(t), np.cos(t), np.sin(c), np.cos(c)
        relion = np.array([[cc * ct * cp - sc * sp, cc * ct * sp + sc * cp, -cc * st],
                           [-sc * ct * cp - cc * sp, -sc * ct * sp + cc * cp, sc * st],
                           [st * cp, st * sp, ct]])
        np.testing.assert_allclose(rotation_matrices([[rot, tilt, psi]])[0], relion, atol=1e-12)


def test_one_tomogram_of_a_multi_tomogram_table_needs_only_its_own_shape():
    frame = read_particles(DATA / "relion5_particles.star", tomograms={"TS_02": TOMOGRAMS["TS_02"]}, tomogram="TS_02",
                           classes=["ribosome", "proteasome"])
    np.testing.assert_allclose(frame[["x", "y", "z"]].to_numpy(), [(250.0, 260.0, 270.0), (235.0, 245.0, 230.0)])
    with pytest.raises(InputError, match="no particles of tomogram 'TS_03' \\(it has TS_01, TS_02\\)"):
        read_particles(DATA / "relion5_particles.star", tomograms=TOMOGRAMS, tomogram="TS_03", classes=["a", "b"])


def test_relion5_without_the_tomogram_shape_is_refused():
    with pytest.raises(InputError, match="shape and voxel size") as err:
        read_particles(DATA / "relion5_particles.star", classes=["a", "b"], tomograms={"TS_01": TOMOGRAMS["TS_01"]})
    assert "'TS_02'" in str(err.value) and "\n" not in str(err.value)


def _relion3(tmp_path: Path, extra: dict, optics: pd.DataFrame | None = None) -> Path:
    block = pd.DataFrame({"rlnMicrographName": ["tomos/TS_01.mrc", "tomos/TS_02.mrc"], "rlnCoordinateX": [1.0, 2.0],
                          "rlnCoordinateY": [3.0, 4.0], "rlnCoordinateZ": [5.0, 6.0],
                          "tomocamClassName": ["a", "b"], **extra})
    path = tmp_path / "warp.star"
    starfile.write({"particles": block} if optics is None else {"optics": optics, "particles": block}, path,
                   overwrite=True)
    return path


@pytest.mark.parametrize("extra, optics", [
    ({"rlnPixelSize": [4.0, 4.0]}, None),
    ({"rlnDetectorPixelSize": [4.0, 4.0], "rlnMagnification": [10000.0, 10000.0]}, None),  # Warp
    ({}, pd.DataFrame({"rlnOpticsGroup": [1], "rlnMicrographPixelSize": [4.0]})),
    ({"rlnOpticsGroup": [2, 1]}, pd.DataFrame({"rlnOpticsGroup": [1, 2], "rlnTomoTiltSeriesPixelSize": [4.0, 4.0]})),
])
def test_relion3_voxel_size_from_the_table(tmp_path, extra, optics):
    frame = read_particles(_relion3(tmp_path, extra, optics))
    assert list(frame["tomogram"]) == ["TS_01", "TS_02"]  # stems of rlnMicrographName
    np.testing.assert_allclose(frame[["x", "y", "z"]].to_numpy(), [[4, 12, 20], [8, 16, 24]])


def test_relion3_voxel_size_from_the_caller_or_refused(tmp_path):
    path = _relion3(tmp_path, {})
    np.testing.assert_allclose(read_particles(path, voxel_size=2.0)["x"], [2.0, 4.0])
    with pytest.raises(InputError, match="rlnPixelSize"):
        read_particles(path)


def test_star_class_numbers_need_the_class_list(tmp_path):
    block = pd.DataFrame({"rlnMicrographName": ["t.mrc"], "rlnCoordinateX": [1.0], "rlnCoordinateY": [1.0],
                          "rlnCoordinateZ": [1.0], "rlnClassNumber": [3], "rlnPixelSize": [1.0]})
    starfile.write(block, tmp_path / "c.star")
    with pytest.raises(InputError, match="tomocamClassName"):
        read_particles(tmp_path / "c.star")
    with pytest.raises(InputError, match="rlnClassNumber 3"):
        read_particles(tmp_path / "c.star", classes=["a", "b"])
    assert list(read_particles(tmp_path / "c.star", classes=["a", "b", "c"])["class"]) == ["c"]
