"""copick export: exact paths and names, the JSON and OME-NGFF 0.4 metadata copick reads, values equal to the
store's, refusals in one line, and nothing under a final name after a failure.

copick itself reads the project in tests/test_write_copick_client.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from copick_builder import CENTRES, LABELS, OBJECTS, RUN, SHAPE, VOXEL, make_project, make_store
from test_cli_main import one_red_line
from test_cli_main import tomocam as run_tomocam
from typer.testing import CliRunner

from tomocam.cli.main import app
from tomocam.errors import ClassError, InputError, OutputError
from tomocam.picking import pick_store
from tomocam.store import open_store
from tomocam.write import copick as copick_export
from tomocam.write.copick import export_copick
from tomocam.write.copick_project import open_project

RUN_DIR = f"ExperimentRuns/{RUN}"
PICKS = {"ribosome": f"{RUN_DIR}/Picks/tomocam_0_ribosome.json",
         "proteasome_26S": f"{RUN_DIR}/Picks/tomocam_0_proteasome-26S.json"}
SEGMENTATION = f"{RUN_DIR}/Segmentations/10.000_tomocam_0_labels-multilabel.zarr"
FEATURES = f"{RUN_DIR}/VoxelSpacing10.000/wbp_tomocam-0-respond_features.zarr"


@pytest.fixture
def store(tmp_path):
    return open_store(make_store(tmp_path))


@pytest.fixture
def config(tmp_path):
    return make_project(tmp_path / "project")


def files(root) -> list[str]:
    """Every path under ``root`` outside the zarr groups, relative (hidden ones included)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".zarr/" not in str(p.relative_to(root)))


def test_picks_labels_and_features_land_where_and_as_copick_reads_them(store, config):
    from ome_zarr_models.v04 import Image

    root = config.parent
    result = export_copick(store, open_project(config), RUN, feature_classes=["proteasome_26S", "ribosome"],
                           threshold=1.0)
    assert [str(p.relative_to(root)) for p in result.paths] == [*PICKS.values(), SEGMENTATION, FEATURES]
    assert not [f for f in files(root) if "partial" in f]
    assert result.added == [] and json.loads(config.read_text())["pickable_objects"] == OBJECTS

    for name, path in PICKS.items():
        doc = json.loads((root / path).read_text())
        assert {k: doc[k] for k in ("pickable_object_name", "user_id", "session_id", "run_name", "voxel_spacing",
                                    "unit", "trust_orientation")} == {
            "pickable_object_name": path.rsplit("_", 1)[1].removesuffix(".json"), "user_id": "tomocam",
            "session_id": "0", "run_name": RUN, "voxel_spacing": VOXEL, "unit": "angstrom",
            "trust_orientation": False}
        own = pick_store(store, classes=[name], threshold=1.0, radius=50.0 if name == "ribosome" else 60.0)
        xyz = np.array([[p["location"][a] for a in "xyz"] for p in doc["points"]])
        np.testing.assert_allclose(xyz, own[["x", "y", "z"]].to_numpy())  # both angstrom
        # the particles are where the blobs are: voxel (z, y, x) -> angstrom (x, y, z) * voxel size
        expected = sorted(tuple(float(v) * VOXEL for v in c[::-1]) for c in CENTRES[name])
        assert sorted(map(tuple, xyz)) == expected
        assert [p["score"] for p in doc["points"]] == pytest.approx(own["score"].tolist())
        assert all(p["transformation_"] == np.eye(4).tolist() and p["instance_id"] == 0 for p in doc["points"])

    seg = zarr.open_group(str(root / SEGMENTATION), mode="r")
    Image.from_zarr(seg)  # valid OME-NGFF 0.4
    assert seg.metadata.zarr_format == 2 and seg["0"].dtype == np.uint8
    assert json.loads((root / SEGMENTATION / "0/.zarray").read_text())["dimension_separator"] == "/"
    assert seg.attrs["multiscales"][0]["datasets"] == [
        {"coordinateTransformations": [{"scale": [VOXEL] * 3, "type": "scale"}], "path": "0"}]
    stored = store.labels(0)[:]
    expected = np.zeros(SHAPE, np.uint8)
    for name, label in LABELS.items():
        expected[stored == store.classes.index(name) + 1] = label
    np.testing.assert_array_equal(seg["0"][:], expected)
    assert set(np.unique(expected)) == {0, 3, 7}

    feat = zarr.open_group(str(root / FEATURES), mode="r")
    Image.from_zarr(feat)
    assert feat.attrs["multiscales"][0]["axes"][0] == {"name": "c", "type": "channel"}
    assert feat.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0] + [VOXEL] * 3
    assert feat.attrs["tomocam"]["channels"] == ["proteasome_26S", "ribosome"]
    assert feat["0"].dtype == np.float32
    full = store.full_grid("respond").compute()
    np.testing.assert_array_equal(feat["0"][:], full[[2, 1]])


def test_float16_gradcam_features_and_a_session(store, config):
    export_copick(store, open_project(config), RUN, session="run2", method="gradcam", feature_classes=["ribosome"],
                  picks=False, labels=False, float16=True)
    root = config.parent
    assert [f for f in files(root) if "tomocam" in f] == [f"{RUN_DIR}/VoxelSpacing10.000/"
                                                          "wbp_tomocam-run2-gradcam_features.zarr"]
    feat = zarr.open_group(str(root / RUN_DIR / "VoxelSpacing10.000/wbp_tomocam-run2-gradcam_features.zarr"), mode="r")
    assert feat["0"].dtype == np.float16
    np.testing.assert_array_equal(feat["0"][:], store.full_grid("gradcam").compute()[[1]].astype(np.float16))


def test_cli_refuses_an_underscore_session_in_one_line(store, config):
    result = run_tomocam("export", store.path, "--copick", str(config), "--run", RUN, "--session", "my_session",
                         test_models=False)
    assert result.returncode == 2 and "'my_session' is not allowed" in one_red_line(result.stderr)
    assert not (config.parent / RUN_DIR / "Picks").exists()


def test_unmapped_class_is_refused_and_nothing_is_written(store, tmp_path):
    config = make_project(tmp_path / "p", objects=OBJECTS[:2])  # no proteasome
    before = files(config.parent)
    with pytest.raises(ClassError, match="class 'proteasome_26S' maps to no pickable object.*--add-objects"):
        export_copick(store, open_project(config), RUN, threshold=1.0)
    assert files(config.parent) == before


def test_add_objects_writes_them_into_the_config(store, tmp_path):
    config = make_project(tmp_path / "p", objects=OBJECTS[:2])
    extra = json.loads(config.read_text()) | {"user_id": "someone"}
    config.write_text(json.dumps(extra))
    result = export_copick(store, open_project(config), RUN, threshold=1.0, radius=40.0, add_objects=True)
    saved = json.loads(config.read_text())
    assert result.added == ["proteasome-26S"] and saved["user_id"] == "someone"
    assert saved["pickable_objects"] == [*OBJECTS[:2], {"name": "proteasome-26S", "is_particle": True, "label": 4,
                                                         "color": [100, 100, 100, 255], "radius": 40.0}]
    seg = zarr.open_group(str(config.parent / SEGMENTATION), mode="r")["0"][:]
    assert set(np.unique(seg)) == {0, 3, 4}
    assert (config.parent / PICKS["proteasome_26S"]).is_file()


def test_existing_results_are_refused_then_replaced_with_overwrite(store, config):
    export_copick(store, open_project(config), RUN, threshold=1.0)
    with pytest.raises(OutputError, match="exists already.*--overwrite"):
        export_copick(store, open_project(config), RUN, threshold=1.0)
    result = export_copick(store, open_project(config), RUN, threshold=100.0, overwrite=True)
    assert result.paths == [config.parent / SEGMENTATION]  # no picks: the earlier picks files are gone
    assert not (config.parent / PICKS["ribosome"]).exists()
    assert not [f for f in files(config.parent) if "partial" in f or f.endswith(".old")]


def test_failure_midway_leaves_no_result_under_a_final_name(store, config, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(copick_export, "write_features", fail)
    before = files(config.parent)
    with pytest.raises(RuntimeError, match="disk gone"):  # picks and labels were already written, under hidden names
        export_copick(store, open_project(config), RUN, threshold=1.0, feature_classes=["ribosome"])
    assert files(config.parent) == before


@pytest.mark.parametrize("change, message", [
    (dict(run="TS-99"), "has no run 'TS-99' \\(runs: TS-01\\)"),
    (dict(voxel_size=7.5), "is at 10 A per voxel, not 7.5"),
    (dict(tomo_type="denoised"), "has no tomogram 'denoised'.*there: wbp"),
])
def test_project_mismatches_are_refused(store, config, change, message):
    args = dict(run=RUN) | change
    with pytest.raises(InputError, match=message):
        export_copick(store, open_project(config), args.pop("run"), threshold=1.0, **args)


def test_a_tomogram_of_another_shape_is_refused(store, tmp_path):
    config = make_project(tmp_path / "p", shape=(20, 24, 30))
    with pytest.raises(InputError, match="is 20x24x30 voxels.*explains a 20x24x28 tomogram"):
        export_copick(store, open_project(config), RUN, threshold=1.0)


def test_features_need_a_tomogram_to_go_beside(store, tmp_path):
    config = make_project(tmp_path / "p", tomograms=("wbp", "denoised"))
    with pytest.raises(InputError, match="give --tomo-type \\(one of denoised, wbp\\)"):
        export_copick(store, open_project(config), RUN, feature_classes=["ribosome"], threshold=1.0)
    export_copick(store, open_project(config), RUN, tomo_type="denoised", feature_classes=["ribosome"],
                  picks=False, labels=False)
    assert (config.parent / RUN_DIR / "VoxelSpacing10.000/denoised_tomocam-0-respond_features.zarr").is_dir()


def test_an_object_without_radius_needs_radius(store, tmp_path):
    objects = [{k: v for k, v in o.items() if k != "radius"} for o in OBJECTS]
    config = make_project(tmp_path / "p", objects=objects)
    with pytest.raises(InputError, match="object 'ribosome' has no radius.*give --radius"):
        export_copick(store, open_project(config), RUN, threshold=1.0)


def test_cli_writes_the_project_and_prints_the_paths(store, config):
    result = CliRunner().invoke(app, ["export", store.path, "--copick", str(config), "--run", RUN,
                                      "-c", "ribosome", "--threshold", "1"])
    assert result.exit_code == 0, result.output
    printed = [line for line in result.stdout.splitlines() if line.startswith("/")]
    assert printed == [str(config.parent / p) for p in (*PICKS.values(), SEGMENTATION, FEATURES)]


def test_cli_copick_options_need_copick(store):
    result = run_tomocam("export", store.path, "--float16", test_models=False)
    assert result.returncode == 2 and "--float16 is an option of the copick export" in one_red_line(result.stderr)
