"""Particle tables through every format: the same particles written as RELION 5, RELION 3, CSV, copick and
data-portal ndjson read back at the same positions in angstrom; bad tables are refused in one line; writes are
atomic and never overwrite unasked."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tomocam.errors import InputError, OutputError
from tomocam.particles import FORMATS, TomogramInfo, from_voxels, particle_table, read_particles, write_particles
from tomocam.particles.table import rotation_matrices, to_voxels

TOMO = TomogramInfo("TS_1", (40, 50, 60), 7.5)
TOMOGRAMS = {TOMO.name: TOMO}


def _read(path, **kwargs):
    return read_particles(path, tomograms=TOMOGRAMS, tomogram=TOMO.name, **kwargs)


positions = st.lists(st.tuples(*(st.floats(0, (n - 1) * TOMO.voxel_size[0]) for n in TOMO.shape[::-1])),
                     min_size=1, max_size=6)
angles = st.tuples(st.floats(-180, 180), st.floats(1, 179), st.floats(-180, 180))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(xyz=positions, data=st.data())
def test_every_format_round_trips_positions_in_angstrom(tmp_path_factory, xyz, data):
    n = len(xyz)
    turns = data.draw(st.lists(angles, min_size=n, max_size=n))
    scores = data.draw(st.lists(st.floats(-10, 10), min_size=n, max_size=n))
    frame = particle_table(TOMO.name, "ribo", xyz, scores, angles=turns)
    folder = tmp_path_factory.mktemp("formats")
    for fmt, suffix in FORMATS.items():
        back = _read(write_particles(frame, folder / f"{fmt}{suffix}", fmt, tomograms=TOMOGRAMS),
                     class_name="ribo")
        assert list(back["tomogram"]) == [TOMO.name] * n and list(back["class"]) == ["ribo"] * n, fmt
        # CSV keeps 4 decimals, STAR 6: well inside a thousandth of a voxel
        np.testing.assert_allclose(back[["x", "y", "z"]].to_numpy(), np.asarray(xyz), atol=1e-3, err_msg=fmt)
        np.testing.assert_allclose(rotation_matrices(back[["rot", "tilt", "psi"]].to_numpy()),
                                   rotation_matrices(turns), atol=1e-4, err_msg=fmt)
        if fmt != "ndjson":  # data-portal points carry no score
            np.testing.assert_allclose(back["score"], scores, atol=1e-4, err_msg=fmt)


def test_multi_tomogram_tables_keep_each_tomogram(tmp_path):
    other = TomogramInfo("TS_2", (10, 10, 10), 15.0)
    infos = {**TOMOGRAMS, other.name: other}
    frame = pd.concat([from_voxels(TOMO, "a", [[1, 2, 3]]), from_voxels(other, "b", [[1, 2, 3]])], ignore_index=True)
    for fmt in ("relion5", "relion3", "csv"):
        back = read_particles(write_particles(frame, tmp_path / f"{fmt}.{fmt}", fmt, tomograms=infos), tomograms=infos)
        assert list(back["tomogram"]) == ["TS_1", "TS_2"]
        np.testing.assert_allclose(back[["x", "y", "z"]].to_numpy(), [[22.5, 15, 7.5], [45, 30, 15]], atol=1e-4)
        np.testing.assert_allclose(to_voxels(back.iloc[1:], other.voxel_size), [[1, 2, 3]], atol=1e-4)


def test_ndjson_is_in_voxels_and_reads_as_copick_does(tmp_path):
    """A data-portal line in voxels; copick's reader multiplies by the voxel spacing (voxel i at i * spacing)."""
    path = tmp_path / "ribosome.ndjson"
    eye = np.eye(3).tolist()
    path.write_text(json.dumps({"type": "point", "location": {"x": 10, "y": 20.5, "z": 3}, "xyz_rotation_matrix": eye})
                    + "\n\n" + json.dumps({"type": "point", "location": {"x": 0, "y": 0, "z": 0}}) + "\n")
    frame = read_particles(path, tomogram="TS_1", voxel_size=10.0)
    np.testing.assert_allclose(frame[["x", "y", "z"]].to_numpy(), [[100, 205, 30], [0, 0, 0]])
    assert list(frame["class"]) == ["ribosome", "ribosome"] and frame["score"].isna().all()
    assert "rot" not in frame.columns  # plain points have no orientation
    out = write_particles(frame, tmp_path / "out.ndjson", "ndjson", tomograms={"TS_1": TomogramInfo("TS_1", (9, 9, 9),
                                                                                                     10.0)})
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {"type": "point", "location": {"x": 10.0, "y": 20.5, "z": 3.0}, "xyz_rotation_matrix": eye}
    oriented = particle_table("TS_1", "r", [[10.0, 0.0, 0.0]], angles=[[0.0, 90.0, 0.0]])
    out = write_particles(oriented, tmp_path / "o.ndjson", "ndjson", tomograms=TOMOGRAMS)
    line = json.loads(out.read_text())
    assert line["type"] == "orientedPoint"
    np.testing.assert_allclose(line["xyz_rotation_matrix"], rotation_matrices([[0, 90, 0]])[0], atol=1e-12)


def test_copick_document_and_translation(tmp_path):
    frame = particle_table("TS_1", "ribo", [[1.0, 2.0, 3.0]], [0.5])
    doc = json.loads(write_particles(frame, tmp_path / "p.json", "copick", tomograms=TOMOGRAMS,
                                     session_id="7").read_text())
    assert {k: doc[k] for k in ("pickable_object_name", "user_id", "session_id", "run_name", "voxel_spacing",
                                "unit")} == {"pickable_object_name": "ribo", "user_id": "tomocam", "session_id": "7",
                                             "run_name": "TS_1", "voxel_spacing": 7.5, "unit": "angstrom"}
    assert doc["points"][0]["location"] == {"x": 1.0, "y": 2.0, "z": 3.0} and doc["points"][0]["score"] == 0.5
    doc["points"][0]["transformation_"] = [[1, 0, 0, 10], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    (tmp_path / "q.json").write_text(json.dumps(doc))
    np.testing.assert_allclose(read_particles(tmp_path / "q.json")[["x", "y", "z"]].to_numpy(), [[11, 2, 3]])


def test_old_tomocam_csv_reads_with_a_tomogram_name(tmp_path):
    """The simulator's CSV (class_name, voxels and angstrom, no tomogram column) and a voxels-only CSV."""
    path = tmp_path / "sim_particles.csv"
    pd.DataFrame({"class_name": ["a"], "class_index": [0], "x": [2.0], "y": [3.0], "z": [4.0], "x_angstrom": [20.0],
                  "y_angstrom": [30.0], "z_angstrom": [40.0]}).to_csv(path, index=False)
    frame = read_particles(path, tomogram="sim")
    assert frame.iloc[0][["tomogram", "class", "x", "y", "z"]].tolist() == ["sim", "a", 20.0, 30.0, 40.0]
    pd.DataFrame({"class_name": ["a"], "x": [2.0], "y": [3.0], "z": [4.0]}).to_csv(path, index=False)
    assert read_particles(path, tomogram="sim", voxel_size=5.0)["x"].tolist() == [10.0]
    with pytest.raises(InputError, match="voxel size"):
        read_particles(path, tomogram="sim")
    with pytest.raises(InputError, match="'tomogram' column"):
        read_particles(path, voxel_size=5.0)


def test_simulator_csv_orientation_is_its_rotation_matrix(tmp_path):
    """The simulator writes R (particle frame -> tomogram, scipy's from_euler("ZYZ", [rot, tilt, psi])) as r11..r33;
    RELION's matrix for the same pose is that R (ParticleSet::getMatrix4x4 maps particle space to tomogram space)."""
    from scipy.spatial.transform import Rotation

    rotation = Rotation.from_euler("ZYZ", [30.0, 50.0, -70.0], degrees=True)
    row = {"class_name": "a", "x_angstrom": 1.0, "y_angstrom": 2.0, "z_angstrom": 3.0, "rot": 30.0, "tilt": 50.0,
           "psi": -70.0, **{f"r{i + 1}{j + 1}": rotation.as_matrix()[i, j] for i in range(3) for j in range(3)}}
    pd.DataFrame([row]).to_csv(tmp_path / "sim.csv", index=False)
    frame = read_particles(tmp_path / "sim.csv", tomogram="sim")
    np.testing.assert_allclose(rotation_matrices(frame[["rot", "tilt", "psi"]].to_numpy())[0], rotation.as_matrix(),
                               atol=1e-12)


@pytest.mark.parametrize("name, text, message", [
    ("t.csv", "tomogram,x_angstrom,y_angstrom,z_angstrom\nT,1,2,3\n", "class_name"),
    ("t.csv", "tomogram,class_name,score\nT,a,1\n", "x_angstrom"),
    ("t.csv", "tomogram,class_name,x_angstrom,y_angstrom,z_angstrom\nT,a,1,nan,3\n", "not a number"),
    ("t.star", "data_particles\nloop_\n_rlnTomoName #1\nT\n", "rlnCenteredCoordinateXAngst"),
    ("t.star", "data_\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n_rlnCoordinateZ #3\n_tomocamClassName #4\n"
               "1 2 3 a\n", "rlnTomoName"),
    ("t.json", "[1, 2]", "copick"),
    ("t.json", '{"pickable_object_name": "a", "run_name": "T", "points": [{"location": {"x": 1}}]}', "location"),
    ("t.ndjson", '{"type": "mesh", "location": {"x": 1, "y": 2, "z": 3}}\n', "line 1"),
])
def test_bad_tables_are_refused_in_one_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        read_particles(path, tomograms=TOMOGRAMS, voxel_size=1.0, tomogram=None if name == "t.star" else "T")
    assert "\n" not in str(err.value)


def test_missing_file_and_missing_voxel_size(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_particles(tmp_path / "none.star")
    (tmp_path / "p.ndjson").write_text('{"type": "point", "location": {"x": 1, "y": 2, "z": 3}}\n')
    with pytest.raises(InputError, match="voxel size"):
        read_particles(tmp_path / "p.ndjson", tomogram="T")
    with pytest.raises(InputError, match="tomogram's name"):
        read_particles(tmp_path / "p.ndjson", voxel_size=1.0)


def test_writers_refuse_what_the_format_cannot_hold(tmp_path):
    two = particle_table("TS_1", ["a", "b"], [[0, 0, 0], [1, 1, 1]])
    with pytest.raises(InputError, match="one class"):
        write_particles(two, tmp_path / "p.json", "copick", tomograms=TOMOGRAMS)
    with pytest.raises(InputError, match="shape and voxel size of tomogram 'TS_1'"):
        write_particles(two, tmp_path / "p.star", "relion5")
    with pytest.raises(InputError, match="unknown particle table format"):
        write_particles(two, tmp_path / "p.x", "relion4")
    assert list(tmp_path.iterdir()) == []


def test_writes_are_atomic_and_refuse_to_overwrite(tmp_path):
    frame = particle_table("TS_1", "a", [[0, 0, 0]])
    path = write_particles(frame, tmp_path / "p.csv", "csv")
    before = path.read_text()
    with pytest.raises(OutputError, match="--overwrite"):
        write_particles(particle_table("TS_1", "b", [[1, 1, 1]]), path, "csv")
    assert path.read_text() == before
    write_particles(particle_table("TS_1", "b", [[1, 1, 1]]), path, "csv", overwrite=True)
    assert read_particles(path)["class"].tolist() == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]  # no temporary file left


@pytest.mark.parametrize("fmt", ["relion5", "relion3", "csv", "copick", "ndjson"])
def test_format_is_detected_from_the_content(tmp_path, fmt):
    frame = particle_table("TS_1", "a", [[15.0, 30.0, 45.0]])
    written = write_particles(frame, tmp_path / f"p{FORMATS[fmt]}", fmt, tomograms=TOMOGRAMS)
    renamed = written.rename(tmp_path / "particles.txt")
    np.testing.assert_allclose(_read(renamed, class_name="a")[["x", "y", "z"]].to_numpy(), [[15, 30, 45]], atol=1e-4)
