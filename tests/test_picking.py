"""Picks of a whole store: known Gaussian blobs come back at their positions (angstrom, tomocam's frame) through
the library and through ``tomocam picks`` in every table format, which reopen with starfile, pandas, json and
the particle-table reader; bad truth tables exit 2 with one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import starfile
from store_builder import build_store, gaussian_blobs, write_tomogram
from typer.testing import CliRunner

from tomocam.cli.main import app
from tomocam.errors import InputError
from tomocam.particles import TomogramInfo, from_voxels, read_particles
from tomocam.picking import evaluate_picks, pick_store, store_tomogram
from tomocam.store import open_store

SHAPE = (32, 40, 48)
VOXEL = 8.0
A_CENTRES = [(8, 10, 12), (24, 30, 36), (8, 30, 40)]
B_CENTRES = [(20, 12, 20)]


@pytest.fixture
def store(tmp_path):
    a = gaussian_blobs(SHAPE, A_CENTRES, [2.0, 3.0, 1.0])
    b = gaussian_blobs(SHAPE, B_CENTRES, [1.5]) - 0.5 * a  # negative evidence at class a's particles
    tomo = write_tomogram(tmp_path / "tomo.mrc", a + b, VOXEL)
    return open_store(build_store(tmp_path / "run.zarr", {"respond": np.stack([a, b])}, ["a", "b"], VOXEL, tomo))


def truth_csv(path):
    rows = [("a", c) for c in A_CENTRES] + [("b", c) for c in B_CENTRES]
    frame = pd.DataFrame(
        {"class_name": [n for n, _ in rows], "x": [c[2] for _, c in rows], "y": [c[1] for _, c in rows],
         "z": [c[0] for _, c in rows]}
    )
    frame.to_csv(path, index=False)
    return path


def voxels(table: pd.DataFrame) -> np.ndarray:
    """(z, y, x) voxels of a particle table's angstrom positions."""
    return table[["z", "y", "x"]].to_numpy() / VOXEL


def test_store_picks_are_the_blob_centres(store):
    table = pick_store(store, threshold=0.5, radius=5 * VOXEL)
    assert list(table["class"]) == ["a", "a", "a", "b"] and set(table["tomogram"]) == {"tomo"}
    np.testing.assert_array_equal(voxels(table), [A_CENTRES[1], A_CENTRES[0], A_CENTRES[2], B_CENTRES[0]])
    assert store_tomogram(store) == TomogramInfo("tomo", SHAPE, VOXEL)
    np.testing.assert_allclose(table["score"][:3], [3.0, 2.0, 1.0], rtol=1e-3)
    assert list(table["class_index"]) == [0, 0, 0, 1]


def test_coarse_level_picks_land_within_a_coarse_voxel(store):
    table = pick_store(store, classes=["a"], threshold=0.3, radius=5 * VOXEL, level=1)
    got = voxels(table)
    expected = np.asarray([A_CENTRES[1], A_CENTRES[0], A_CENTRES[2]], float)
    assert np.abs(got - expected).max() <= 1.0  # level 1: 2x2x2 means, centres at half-voxel offsets


def test_evaluation_counts_hits_misses_and_wrong_class(store):
    table = pick_store(store, threshold=0.5, radius=5 * VOXEL)
    truth = from_voxels(store_tomogram(store), ["a", "a", "b", "b"], [(8, 10, 12), (0, 0, 0), (20, 12, 20),
                                                                      (24, 30, 36)])
    per_class, overall = evaluate_picks(table, truth, tolerance=2 * VOXEL)
    assert (per_class["a"].true_positives, per_class["a"].false_positives, per_class["a"].false_negatives) == (1, 2, 1)
    assert (per_class["b"].true_positives, per_class["b"].false_positives, per_class["b"].false_negatives) == (1, 0, 1)
    assert overall.precision == pytest.approx(2 / 4) and overall.recall == pytest.approx(2 / 4)


def test_cli_writes_star_and_csv_and_scores_against_truth(store, tmp_path):
    truth = truth_csv(tmp_path / "truth.csv")
    out = tmp_path / "picks"
    result = CliRunner().invoke(
        app, ["picks", store.path, "--radius", "40", "--threshold", "0.5", "-o", str(out), "--truth", str(truth)]
    )
    assert result.exit_code == 0, result.output
    assert "4 picks" in result.output and "1.000" in result.output
    star = starfile.read(tmp_path / "picks.star")
    assert {"rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnPixelSize",
            "rlnClassNumber", "rlnAutopickFigureOfMerit", "tomocamClassName"} <= set(star.columns)
    assert list(star["rlnClassNumber"]) == [1, 1, 1, 2] and set(star["rlnMicrographName"]) == {"tomo.mrc"}
    assert sorted(zip(star["rlnCoordinateZ"], star["rlnCoordinateY"], star["rlnCoordinateX"])) == sorted(
        A_CENTRES + B_CENTRES)
    csv = pd.read_csv(tmp_path / "picks.csv")  # today's columns, and the tomogram's name
    assert {"tomogram", "class_name", "class_index", "x", "y", "z", "x_angstrom", "y_angstrom", "z_angstrom",
            "score"} <= set(csv.columns)
    np.testing.assert_allclose(csv["x_angstrom"], csv["x"] * VOXEL)
    # Both files read back as particle tables, equal to each other.
    pd.testing.assert_frame_equal(read_particles(tmp_path / "picks.star"), read_particles(tmp_path / "picks.csv"),
                                  check_dtype=False, atol=1e-4)
    again = CliRunner().invoke(app, ["picks", store.path, "--radius", "40", "-o", str(out)])
    assert again.exit_code != 0 and "exist already" in str(again.exception or again.output)


def test_cli_writes_every_format_at_the_same_positions(store, tmp_path):
    out = tmp_path / "p"
    args = ["picks", store.path, "--radius", "40", "--threshold", "0.5", "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "-f", "relion5", "-f", "csv", "-f", "copick", "-f", "ndjson"])
    assert result.exit_code == 0, result.output
    tomograms = {"tomo": store_tomogram(store)}
    reference = read_particles(tmp_path / "p.csv")
    centred = starfile.read(tmp_path / "p.star")  # RELION 5: from the centre (48, 40, 32) / 2 voxels, x y z
    np.testing.assert_allclose(centred["rlnCenteredCoordinateXAngst"], reference["x"] - 24 * VOXEL, atol=1e-4)
    relion5 = read_particles(tmp_path / "p.star", tomograms=tomograms)
    np.testing.assert_allclose(relion5[["x", "y", "z"]], reference[["x", "y", "z"]], atol=1e-4)
    for suffix in ("json", "ndjson"):
        per_class = pd.concat([read_particles(tmp_path / f"p_{name}.{suffix}", tomograms=tomograms, tomogram="tomo",
                                              class_name=name) for name in ("a", "b")], ignore_index=True)
        assert list(per_class["class"]) == list(reference["class"])
        np.testing.assert_allclose(per_class[["x", "y", "z"]], reference[["x", "y", "z"]], atol=1e-4)
    assert json.loads((tmp_path / "p_a.json").read_text())["run_name"] == "tomo"
    both = CliRunner().invoke(app, [*args, "-f", "relion5", "-f", "relion3", "--overwrite"])
    assert isinstance(both.exception, InputError) and "both write" in str(both.exception)
    unknown = CliRunner().invoke(app, [*args, "-f", "relion4", "--overwrite"])
    assert isinstance(unknown.exception, InputError) and "relion4" in str(unknown.exception)


@pytest.mark.parametrize("text, message", [
    ("name,a\nx,1\n", "class_name"),  # no columns tomocam knows
    ("class_name,x,y,z\nzzz,1,2,3\n", "'zzz'"),  # a class the model lacks
    ("tomogram,class_name,x,y,z\nother,a,1,2,3\n", "tomogram 'tomo'"),  # particles of another tomogram only
])
def test_cli_refuses_bad_truth_tables_in_one_line(store, tmp_path, monkeypatch, capsys, text, message):
    import sys

    from tomocam.cli.main import main

    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    monkeypatch.setattr(sys, "argv", ["tomocam", "picks", store.path, "-r", "40", "--truth", str(bad),
                                      "-o", str(tmp_path / "p")])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.glob("p*"))  # nothing written


def test_exclusive_picks_keep_a_site_for_its_highest_class(tmp_path):
    a = gaussian_blobs(SHAPE, [(16, 20, 24)], [3.0])
    b = 0.6 * a  # class b answers weakly to the class-a particle
    tomo = write_tomogram(tmp_path / "t.mrc", a, VOXEL)
    store = open_store(build_store(tmp_path / "r.zarr", {"respond": np.stack([a, b])}, ["a", "b"], VOXEL, tomo))
    assert list(pick_store(store, threshold=0.5, radius=40)["class"]) == ["a"]
    assert list(pick_store(store, threshold=0.5, radius=40, exclusive=False)["class"]) == ["a", "b"]


@pytest.mark.parametrize("method", ["respond", "gradcam"])
def test_end_to_end_picks_of_explained_tomogram_find_every_particle(tmp_path, method):
    """Tomocam's explain pipeline on a tomogram with 27 known particles of 3 classes, with a model whose right
    answer is known (a matched filter, see explain_models): the picks match the particles one to one."""
    from distributed import Client, LocalCluster
    from explain_models import SHAPES, matched_filter_checkpoint, particles_volume
    from explain_models import write_mrc as write_volume

    from tomocam.pipeline import ExplainConfig, explain_tomogram

    volume, truth = particles_volume((48, 48, 48), n=27, seed=3)
    tomo = write_volume(tmp_path / "t.mrc", volume)
    config = ExplainConfig(tomogram=str(tomo), output=str(tmp_path / "t.zarr"),
                           model=str(matched_filter_checkpoint(tmp_path / "mf.pt")), methods=(method,))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            store = open_store(explain_tomogram(config, client=client).store)
    names = list(SHAPES)
    expected = from_voxels(store_tomogram(store), [names[k] for k, _ in truth], [c for _, c in truth])
    threshold = 0.2 * float(np.asarray(store.heatmap(method, store.n_levels - 1)).max())
    table = pick_store(store, method=method, threshold=threshold, radius=50.0)
    per_class, overall = evaluate_picks(table, expected, tolerance=20.0)
    assert overall.precision == 1.0 and overall.recall == 1.0, per_class


def test_no_picks_means_zero_recall_over_the_chosen_classes(store):
    table = pick_store(store, threshold=100.0, radius=40)
    truth = from_voxels(store_tomogram(store), ["a", "b"], [(1, 1, 1), (2, 2, 2)])
    per_class, overall = evaluate_picks(table, truth, 10.0, classes=["a"])
    assert len(table) == 0 and list(per_class) == ["a"]
    assert (overall.true_positives, overall.false_negatives, overall.recall) == (0, 1, 0.0)


def test_cli_skips_the_background_class_unless_asked(tmp_path):
    a = gaussian_blobs(SHAPE, [(16, 20, 24)], [3.0])
    bg = gaussian_blobs(SHAPE, [(8, 8, 8)], [2.0])
    tomo = write_tomogram(tmp_path / "t.mrc", a, VOXEL)
    store = build_store(tmp_path / "r.zarr", {"respond": np.stack([a, bg])}, ["a", "background"], VOXEL, tomo)
    result = CliRunner().invoke(app, ["picks", str(store), "-r", "40", "-t", "0.5"])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(tmp_path / "r_respond_picks.csv")["class_name"]) == ["a"]
    result = CliRunner().invoke(app, ["picks", str(store), "-r", "40", "-t", "0.5", "-c", "background", "--overwrite"])
    assert list(pd.read_csv(tmp_path / "r_respond_picks.csv")["class_name"]) == ["background"]
