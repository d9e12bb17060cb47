"""Which tomograms a dataset is: folders, quoted glob patterns, list files and plain paths, resolved as the SLURM
array script resolves them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tomocam.dataset import is_dataset, resolve_dataset
from tomocam.errors import InputError


@pytest.fixture
def tree(tmp_path) -> Path:
    for name in ("b.mrc", "a.rec", "a_mask.mrc", "notes.txt", "sub/c.mrc", "sub/deeper/d.mrc", "sub/c_mask.mrc"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    return tmp_path


def test_folder_gives_its_tomograms_sorted_without_masks_or_subfolders(tree):
    assert resolve_dataset([str(tree)]) == [str(tree / "a.rec"), str(tree / "b.mrc")]
    assert resolve_dataset([str(tree)], exclude=()) == [str(tree / n) for n in ("a.rec", "a_mask.mrc", "b.mrc")]


def test_quoted_glob_pattern_expands_here_recursively_and_without_excluded_files(tree):
    assert resolve_dataset([f"{tree}/sub/*.mrc"]) == [str(tree / "sub/c.mrc")]
    assert resolve_dataset([f"{tree}/**/*.mrc"]) == [str(tree / n) for n in ("b.mrc", "sub/c.mrc", "sub/deeper/d.mrc")]


def test_list_file_one_path_a_line_relative_to_the_current_folder(tree, monkeypatch):
    listing = tree / "list.txt"
    listing.write_text(f"# my dataset\n\nsub/c.mrc\n  {tree / 'b.mrc'}  \na_mask.mrc\nsub/c.mrc\n")
    monkeypatch.chdir(tree)
    # named in a list: kept even where a folder would exclude it; twice: once
    assert resolve_dataset([str(listing)]) == [str(tree / n) for n in ("sub/c.mrc", "b.mrc", "a_mask.mrc")]


def test_inputs_mix_and_keep_their_order_each_file_once(tree):
    got = resolve_dataset([str(tree / "sub" / "c.mrc"), str(tree), str(tree / "b.mrc")])
    assert got == [str(tree / "sub/c.mrc"), str(tree / "a.rec"), str(tree / "b.mrc")]


def test_missing_file_is_kept_for_the_run_to_report_but_an_empty_folder_or_pattern_is_an_error(tree):
    assert resolve_dataset([str(tree / "gone.mrc"), str(tree / "b.mrc")])[0] == str(tree / "gone.mrc")
    (tree / "empty").mkdir()
    with pytest.raises(InputError, match="holds no \\*.mrc or \\*.rec file"):
        resolve_dataset([str(tree / "empty")])
    with pytest.raises(InputError, match="matches no tomogram"):
        resolve_dataset([f"{tree}/*.mrcz"])
    (tree / "empty.txt").write_text("# nothing\n")
    with pytest.raises(InputError, match="names no tomogram"):
        resolve_dataset([str(tree / "empty.txt")])


def test_one_tomogram_path_is_not_a_dataset_but_a_folder_pattern_list_or_several_are(tree):
    assert not is_dataset([str(tree / "b.mrc")])
    assert not is_dataset([str(tree / "missing.mrc")])  # today's single run, which reports the missing file
    (tree / "list.txt").write_text("b.mrc\n")
    for inputs in ([str(tree)], [f"{tree}/*.mrc"], [str(tree / "list.txt")], [str(tree / "b.mrc")] * 2):
        assert is_dataset(inputs), inputs


def _ome_image(path: Path, levels: int = 2) -> Path:
    """A small OME-NGFF 0.5 image (zarr v3) with ``levels`` levels, written with zarr alone."""
    import numpy as np
    import zarr

    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    datasets = []
    for level in range(levels):
        group.create_array(str(level), data=np.zeros((8 >> level,) * 3, np.float32))
        datasets.append({"path": str(level), "coordinateTransformations": [{"type": "scale",
                                                                            "scale": [10.0 * 2**level] * 3}]})
    axes = [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"]
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets}]}
    return path


def test_ome_zarr_images_are_tomograms_of_a_folder_and_one_alone_is_no_dataset(tmp_path):
    (tmp_path / "a.mrc").write_bytes(b"")
    image = _ome_image(tmp_path / "b.zarr")
    (tmp_path / "notes").mkdir()
    assert not is_dataset([str(image)])
    assert is_dataset([str(tmp_path)])
    assert resolve_dataset([str(tmp_path)]) == [str(tmp_path / "a.mrc"), str(image)]
    assert resolve_dataset([str(tmp_path)], level=1) == [str(tmp_path / "a.mrc"), str(image / "1")]


def test_a_copick_project_without_run_is_a_dataset_of_its_runs(tmp_path):
    import json

    from tomocam.dataset import store_names

    root = tmp_path / "proj"
    for run in ("TS_01", "TS_02"):
        _ome_image(root / "ExperimentRuns" / run / "VoxelSpacing10.000" / "wbp.zarr")
    (root / "ExperimentRuns" / "TS_03").mkdir(parents=True)  # no tomogram: kept, for the run to report
    config = root / "copick_config.json"
    config.write_text(json.dumps({"name": "p", "pickable_objects": [], "overlay_root": f"local://{root}"}))
    assert is_dataset([str(config)]) and not is_dataset([str(config)], run="TS_01")
    paths = resolve_dataset([str(config)], tomo_type="wbp", voxel_spacing=10)
    assert paths == [str(root / "ExperimentRuns" / r / "VoxelSpacing10.000" / "wbp.zarr")
                     for r in ("TS_01", "TS_02", "TS_03")]
    assert list(store_names(paths).values()) == ["TS_01_wbp", "TS_02_wbp", "TS_03_wbp"]
    with pytest.raises(InputError, match="--tomo-type and --voxel-spacing"):
        resolve_dataset([str(config)])
