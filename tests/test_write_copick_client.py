"""copick itself, in its own virtual environment, reads what ``tomocam export --copick`` wrote; and tomocam reads
a project that copick's API made.

copick pins ``zarr<3`` and cannot live beside tomocam, so a session fixture installs it from the package index
into a virtual environment cached in pytest's cache folder (about a minute the first time, nothing after); the
copick side runs there as a script that writes what it read into an ``.npz``/JSON pair, and the assertions run
here. Without network access to the index the tests skip, saying so.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from copick_builder import CENTRES, LABELS, OBJECTS, RUN, SHAPE, VOXEL, make_project, make_store
from test_cli_main import tomocam as run_tomocam

from tomocam.picking import pick_store
from tomocam.store import open_store

pytestmark = pytest.mark.slow

#: The copick release the tests read with (the newest 1.x when written).
COPICK = "copick==1.31.*"


@pytest.fixture(scope="session")
def copick_python(request, tmp_path_factory) -> Path:
    """The Python of a virtual environment with copick installed from the package index (cached between runs)."""
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    folder = cache.mkdir("copick-1.31-venv") if cache is not None else tmp_path_factory.mktemp("copick-venv")
    python = folder / "bin" / "python"
    check = [str(python), "-c", "import copick, sys; sys.exit(not copick.__version__.startswith('1.31'))"]
    if python.exists() and subprocess.run(check, capture_output=True, timeout=120).returncode == 0:
        return python
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], capture_output=True, text=True,
                          timeout=120)
    if made.returncode != 0:
        pytest.skip(f"cannot create a virtual environment for copick: {made.stderr.strip()[-300:]}")
    pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          "--no-compile", COPICK],
                         capture_output=True, text=True, timeout=600)
    if pip.returncode != 0 or subprocess.run(check, capture_output=True, timeout=120).returncode != 0:
        last = (pip.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"pip cannot install {COPICK} from the package index here: {last}")
    return python


def run_copick(python: Path, script: str, *args: str) -> None:
    """Run ``script`` in copick's environment; a failure shows its traceback."""
    result = subprocess.run([str(python), "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


READ = """
    import json, sys
    import numpy as np
    import copick
    from copick.util.ome import get_voxel_size_from_zarr
    import zarr

    config, run_name, out = sys.argv[1:]
    root = copick.from_file(config)
    run = root.get_run(run_name)
    found = {"objects": {o.name: o.label for o in root.pickable_objects}, "picks": {}, "segmentations": [],
             "features": []}
    arrays = {}
    for picks in run.get_picks(user_id="tomocam"):
        found["picks"][f"{picks.session_id}/{picks.pickable_object_name}"] = {
            "xyz": picks.full_positions().tolist(), "scores": picks.scores().tolist(),
            "run_name": picks.meta.run_name, "voxel_spacing": picks.meta.voxel_spacing}
    for seg in run.get_segmentations(user_id="tomocam", is_multilabel=True):
        key = f"seg/{seg.session_id}/{seg.name}"
        arrays[key] = seg.numpy()
        found["segmentations"].append({"key": key, "voxel_size": seg.voxel_size,
                                       "scale": get_voxel_size_from_zarr(zarr.open(seg.zarr()))})
    for vs in run.voxel_spacings:
        for tomo in vs.tomograms:
            for feat in tomo.features:
                key = f"feat/{vs.voxel_size}/{tomo.tomo_type}/{feat.feature_type}"
                arrays[key] = feat.numpy()
                found["features"].append({"key": key, "voxel_size": vs.voxel_size,
                                          "scale": get_voxel_size_from_zarr(zarr.open(feat.zarr()))})
    np.savez(out + ".npz", **arrays)
    with open(out + ".json", "w") as f:
        json.dump(found, f)
"""


def test_copick_reads_the_picks_labels_and_features_tomocam_wrote(copick_python, tmp_path):
    store = open_store(make_store(tmp_path))
    config = make_project(tmp_path / "project", objects=OBJECTS[:2])  # no proteasome object: --add-objects
    first = run_tomocam("export", store.path, "--copick", str(config), "--run", RUN, "--add-objects",
                        "--radius", "55", "--threshold", "1", "-c", "proteasome_26S", "-c", "ribosome",
                        test_models=False)
    assert first.returncode == 0, first.stderr
    second = run_tomocam("export", store.path, "--copick", str(config), "--run", RUN, "--session", "half",
                         "--no-picks", "--no-labels", "-m", "gradcam", "-c", "ribosome", "--float16",
                         test_models=False)
    assert second.returncode == 0, second.stderr
    run_copick(copick_python, READ, str(config), RUN, str(tmp_path / "read"))
    found = json.loads((tmp_path / "read.json").read_text())
    arrays = np.load(tmp_path / "read.npz")

    labels = {"ribosome": 3, "proteasome_26S": 4}  # the added object takes the next free label
    assert found["objects"] == {"membrane": 1, "ribosome": 3, "proteasome-26S": 4}
    assert sorted(found["picks"]) == ["0/proteasome-26S", "0/ribosome"]
    for name, obj in (("ribosome", "ribosome"), ("proteasome_26S", "proteasome-26S")):
        read = found["picks"][f"0/{obj}"]
        own = pick_store(store, classes=[name], threshold=1.0, radius=55.0)
        assert len(own) == len(CENTRES[name]) and read["run_name"] == RUN and read["voxel_spacing"] == VOXEL
        voxels = np.asarray(read["xyz"]) / VOXEL  # (n, x y z)
        assert np.abs(voxels - own[["x", "y", "z"]].to_numpy() / VOXEL).max() <= 0.5
        assert read["scores"] == pytest.approx(own["score"].tolist())

    (seg,) = found["segmentations"]
    assert seg["key"] == "seg/0/labels" and seg["voxel_size"] == seg["scale"] == VOXEL
    stored = store.labels(0)[:]
    expected = np.zeros(SHAPE, np.uint8)
    for name, label in labels.items():
        expected[stored == store.classes.index(name) + 1] = label
    assert arrays[seg["key"]].dtype == np.uint8 and set(np.unique(expected)) == {0, 3, 4}
    np.testing.assert_array_equal(arrays[seg["key"]], expected)

    features = {f["key"]: f for f in found["features"]}
    assert sorted(features) == ["feat/10.0/wbp/tomocam-0-respond", "feat/10.0/wbp/tomocam-half-gradcam"]
    assert all(f["voxel_size"] == f["scale"] == VOXEL for f in features.values())
    respond = arrays["feat/10.0/wbp/tomocam-0-respond"]
    np.testing.assert_array_equal(respond, store.full_grid("respond").compute()[[2, 1]])
    gradcam = arrays["feat/10.0/wbp/tomocam-half-gradcam"]
    assert gradcam.dtype == np.float16
    np.testing.assert_array_equal(gradcam, store.full_grid("gradcam").compute()[[1]].astype(np.float16))
    assert set(LABELS) == {"ribosome", "proteasome_26S"}


MAKE = """
    import json, os, sys
    import numpy as np
    import copick

    folder, volume, picks_file = sys.argv[1:]
    os.makedirs(folder, exist_ok=True)
    config = {"name": "made by copick", "config_type": "filesystem", "overlay_root": "local://" + folder,
              "overlay_fs_args": {"auto_mkdir": True},
              "pickable_objects": [{"name": n, "is_particle": True, "label": i + 1, "radius": 30.0}
                                   for i, n in enumerate(["small", "large", "rod"])]}
    with open(os.path.join(folder, "copick_config.json"), "w") as f:
        json.dump(config, f)
    root = copick.from_file(os.path.join(folder, "copick_config.json"))
    run = root.new_run("TS-7")
    run.new_voxel_spacing(10.0).new_tomogram("wbp").from_numpy(np.load(volume))
    shift = np.array([5.0, -5.0, 10.0])  # the rods carry part of their position in their transforms
    for name, points in json.load(open(picks_file)).items():
        xyz = np.asarray(points, dtype=float).reshape(-1, 3)
        transforms = np.tile(np.eye(4), (len(xyz), 1, 1))
        if name == "rod":
            transforms[:, :3, 3] = shift
            xyz = xyz - shift
        run.new_picks(name, "1", "annotator").from_numpy(xyz, transforms, scores=np.linspace(0.5, 1.0, len(xyz)))
"""


def test_tomocam_reads_and_explains_a_project_copick_made(copick_python, tmp_path, monkeypatch, capsys):
    try:
        from tomocam.particles import read_particles
    except ImportError:
        pytest.skip("the particle-table room (tomocam.particles, with the copick picks reader) is not in this tree")
    from tomocam.cli import explain as explain_cli

    if "run" not in inspect.signature(explain_cli.explain).parameters:
        pytest.skip("'tomocam explain' cannot read copick projects in this tree (no --run/--tomo-type options)")
    from explain_models import SHAPES, matched_filter_checkpoint, particles_volume, write_mrc

    from tomocam.cli.main import main

    volume, truth = particles_volume((32, 32, 32), n=4, seed=3)
    np.save(tmp_path / "volume.npy", volume)
    names = list(SHAPES)
    picks = {name: [[c[2] * VOXEL, c[1] * VOXEL, c[0] * VOXEL] for k, c in truth if names[k] == name]
             for name in names}
    (tmp_path / "picks.json").write_text(json.dumps(picks))
    project = tmp_path / "made"
    run_copick(copick_python, MAKE, str(project), str(tmp_path / "volume.npy"), str(tmp_path / "picks.json"))

    for name, xyz in picks.items():
        table = read_particles(project / "ExperimentRuns/TS-7/Picks" / f"annotator_1_{name}.json")
        assert set(table["tomogram"]) <= {"TS-7"} and set(table["class"]) <= {name}
        np.testing.assert_allclose(table[["x", "y", "z"]].to_numpy(), np.asarray(xyz).reshape(-1, 3))
        np.testing.assert_allclose(table["score"], np.linspace(0.5, 1.0, len(xyz)))

    model = matched_filter_checkpoint(tmp_path / "mf.pt")

    def explain(*args: str) -> None:
        monkeypatch.setattr(sys, "argv", ["tomocam", "explain", *args, "--model", str(model), "--workers", "1",
                                          "--no-progress"])
        try:
            main()
        except SystemExit as stop:
            assert not stop.code, capsys.readouterr().err
        capsys.readouterr()

    explain(str(project / "copick_config.json"), "--run", "TS-7", "--tomo-type", "wbp", "--voxel-spacing", "10",
            "-o", str(tmp_path / "copick.zarr"))
    explain(str(write_mrc(tmp_path / "same.mrc", volume, VOXEL)), "-o", str(tmp_path / "mrc.zarr"))
    from_copick, from_mrc = open_store(tmp_path / "copick.zarr"), open_store(tmp_path / "mrc.zarr")
    assert from_copick.shape == (32, 32, 32) and from_copick.voxel_size == (VOXEL,) * 3
    np.testing.assert_allclose(from_copick.heatmap("respond")[:], from_mrc.heatmap("respond")[:], rtol=1e-6,
                               atol=1e-7)
    labels = from_copick.labels(0)[:]
    assert [int(labels[c]) for _, c in truth] == [k + 1 for k, _ in truth]

    # and back: the store of the copick tomogram exported into its own project (the tomogram found from the
    # store), read by copick: a real store's full-grid heatmaps, stitched from its per-tile maps
    back = run_tomocam("export", str(tmp_path / "copick.zarr"), "--copick", str(project / "copick_config.json"),
                       "--run", "TS-7", "-c", "rod", "-c", "small", test_models=False)
    assert back.returncode == 0, back.stderr
    run_copick(copick_python, READ, str(project / "copick_config.json"), "TS-7", str(tmp_path / "back"))
    found = json.loads((tmp_path / "back.json").read_text())
    arrays = np.load(tmp_path / "back.npz")
    assert [f["key"] for f in found["features"]] == ["feat/10.0/wbp/tomocam-0-respond"]
    np.testing.assert_array_equal(arrays["feat/10.0/wbp/tomocam-0-respond"],
                                  from_copick.full_grid("respond").compute()[[2, 0]])
    np.testing.assert_array_equal(arrays["seg/0/labels"], labels)  # the objects' labels are the classes' + 1
    own = {name: pick_store(from_copick, classes=[name], radius=30.0) for name in names}
    assert sorted(found["picks"]) == sorted(f"0/{name}" for name, table in own.items() if len(table)) != []
    for name, table in own.items():
        if len(table):
            read = np.asarray(found["picks"][f"0/{name}"]["xyz"])
            assert read.shape == (len(table), 3)
            assert np.abs(read - table[["x", "y", "z"]].to_numpy()).max() <= 0.5 * VOXEL
