"""The copick project layout: copick's name rule, the paths of each result, roots, and refused projects."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from copick_builder import RUN, VOXEL, make_project

from tomocam.errors import InputError
from tomocam.write.copick_project import check_name, open_project, sanitize_name


@pytest.mark.parametrize("name", ["my_session", "a b", "", "-x", "a/b"])
def test_copick_names_refuse_what_copick_refuses(name):
    with pytest.raises(InputError, match="not allowed"):
        check_name("session", name)
    assert check_name("session", "run-2.5") == "run-2.5"
    assert sanitize_name("proteasome_26S") == "proteasome-26S"


def test_results_go_to_the_overlay_and_tomograms_come_from_both_roots(tmp_path):
    config = make_project(tmp_path / "static", tomograms=("wbp", "denoised"))
    data = json.loads(config.read_text())
    overlay = tmp_path / "overlay"
    (overlay / "ExperimentRuns" / RUN / "VoxelSpacing10.000" / "wbp.zarr").mkdir(parents=True)
    (overlay / "ExperimentRuns" / RUN / "VoxelSpacing10.000" / "wbp_x_features.zarr").mkdir()
    data |= {"static_root": data["overlay_root"], "overlay_root": f"local://{overlay}"}
    config.write_text(json.dumps(data))
    project = open_project(config)
    run = overlay / "ExperimentRuns" / RUN
    assert project.overlay == overlay and project.runs() == [RUN]
    assert project.tomograms(RUN, VOXEL) == {"denoised": tmp_path / "static" / "ExperimentRuns" / RUN /
                                             "VoxelSpacing10.000" / "denoised.zarr",
                                             "wbp": run / "VoxelSpacing10.000" / "wbp.zarr"}
    assert project.picks_path(RUN, "tomocam", "0", "ribosome") == run / "Picks/tomocam_0_ribosome.json"
    assert (project.segmentation_path(RUN, 7.5, "tomocam", "s1", "labels")
            == run / "Segmentations/7.500_tomocam_s1_labels-multilabel.zarr")
    assert (project.features_path(RUN, VOXEL, "wbp", "tomocam-0-respond")
            == run / "VoxelSpacing10.000/wbp_tomocam-0-respond_features.zarr")
    assert np.asarray(zarr.open_group(str(project.tomograms(RUN, VOXEL)["denoised"]), mode="r")["0"]).shape == (
        20, 24, 28)


def test_added_objects_are_saved_keeping_every_other_key(tmp_path):
    config = make_project(tmp_path / "p")
    before = json.loads(config.read_text())
    project = open_project(config).with_objects([{"name": "new", "is_particle": True, "label": 9}])
    assert json.loads(config.read_text()) == before  # in memory until saved
    project.save()
    after = json.loads(config.read_text())
    assert after == before | {"pickable_objects": [*before["pickable_objects"],
                                                   {"name": "new", "is_particle": True, "label": 9}]}
    assert [p.name for p in config.parent.iterdir() if "partial" in p.name] == []


def test_remote_and_portal_projects_are_refused(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"pickable_objects": [], "overlay_root": "s3://bucket/p"}))
    with pytest.raises(InputError, match="local projects only"):
        open_project(path)
    path.write_text(json.dumps({"pickable_objects": [], "config_type": "cryoet_data_portal", "overlay_root": "/x"}))
    with pytest.raises(InputError, match="'cryoet_data_portal' project"):
        open_project(path)
