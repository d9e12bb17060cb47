"""Localisation evaluation: exact pointing rates, class accuracy and picks on stores built with known heatmaps,
the no-model baseline on a tomogram of blobs at known centres, chance, and the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from store_builder import build_store, gaussian_blobs, write_tomogram
from typer.testing import CliRunner

from tomocam.cli.main import app, main
from tomocam.errors import ClassError, InputError
from tomocam.evaluate.localisation import (
    ball_fraction,
    baseline_peaks,
    best_threshold,
    class_at_centres,
    cube_around,
    evaluate_localisation,
    extreme_voxel,
    peak_kinds,
    pointing_chance,
    pointing_peaks,
)
from tomocam.particles import TomogramInfo, from_voxels, write_particles
from tomocam.store import open_store

SHAPE = (24, 40, 64)  # z, y, x
CLASSES = ["a", "b", "background"]
VOXEL = 10.0
VS = (VOXEL,) * 3


def pointing(heatmap, particles: pd.DataFrame, classes, size: int, radius: float) -> np.ndarray:
    """Pointing-game hits ``(n,)``: each particle's maximum on the particle itself."""
    return peak_kinds(pointing_peaks(heatmap, particles, VS, classes, size), particles, VS, radius) == "own"


def baseline_pointing(volume, particles: pd.DataFrame, size: int, radius: float, sigma: float,
                      bright: bool) -> np.ndarray:
    """No-model pointing hits ``(n,)``."""
    return peak_kinds(baseline_peaks(volume, particles, VS, size, sigma, bright), particles, VS, radius) == "own"


def _particles(zyx: list[tuple[int, int, int]], names: list[str]) -> pd.DataFrame:
    """A particle table (angstrom) of particles at voxels ``zyx`` of the test tomogram ``t``."""
    return from_voxels(TomogramInfo("t", SHAPE, VOXEL), names, zyx)


# six particles 12+ voxels apart along x (cubes of 11 do not overlap), one 2 voxels from the x = 0 face
CENTRES = [(12, 20, 2), (12, 20, 14), (12, 20, 26), (12, 20, 38), (12, 20, 50), (12, 10, 61)]
NAMES = ["a", "b", "a", "b", "a", "b"]


def _peaks_store(tmp_path, offsets: dict[str, list[int]]):
    """Heatmaps of noise in [0, 0.5) with, per particle, one voxel of 1 in its true class's channel at the
    particle's centre shifted by the given offset along x."""
    rng = np.random.default_rng(0)
    maps = {}
    for method, offs in offsets.items():
        h = rng.uniform(0, 0.5, size=(len(CLASSES), *SHAPE)).astype(np.float32)
        for (z, y, x), name, off in zip(CENTRES, NAMES, offs):
            h[CLASSES.index(name), z, y, x + off] = 1.0
        maps[method] = h
    tomo = write_tomogram(tmp_path / "t.mrc", np.zeros(SHAPE, np.float32), VOXEL)
    return open_store(build_store(tmp_path / "s.zarr", maps, CLASSES, VOXEL, tomo))


def test_pointing_rate_is_exact_for_peaks_at_known_offsets(tmp_path):
    # |offset| <= radius 3 is a hit: -2 (at the clipped face), 0, 3, -3 hit; 4, -5 miss
    store = _peaks_store(tmp_path, {"respond": [-2, 0, 3, 4, -5, -3], "gradcam": [0, 4, 4, -4, 5, -3]})
    particles = _particles(CENTRES, NAMES)
    hits = pointing(store.heatmap("respond"), particles, CLASSES, size=11, radius=3)
    np.testing.assert_array_equal(hits, [True, True, True, False, False, True])
    assert pointing(store.heatmap("gradcam"), particles, CLASSES, size=11, radius=3).mean() == pytest.approx(2 / 6)
    # the true class's channel counts: peaks put into the wrong channel are not found
    swapped = _particles(CENTRES, ["b", "a", "b", "a", "b", "a"])
    assert not pointing(store.heatmap("respond"), swapped, CLASSES, size=11, radius=3).any()


def test_chance_is_the_share_of_the_cube_within_the_radius():
    assert ball_fraction((11, 11, 11), np.array([5.0, 5, 5]), 3) == pytest.approx(123 / 11**3)  # 123 lattice points
    assert ball_fraction((6, 11, 11), np.array([0.0, 5, 5]), 3) == pytest.approx(76 / (6 * 121))  # clipped at a face
    cube = cube_around(np.array([0.2, 20, 30]), 11, (24, 40, 64))
    assert cube.slices == (slice(0, 6), slice(15, 26), slice(25, 36)) and cube.shape == (6, 11, 11)
    np.testing.assert_allclose(cube.centre, [0.2, 5, 5])
    inside = _particles([(12, 20, 30), (10, 15, 20)], ["a", "a"])
    assert pointing_chance(inside, SHAPE, VS, 11, 3) == pytest.approx(123 / 11**3)
    # any instance: a particle of the class 5 voxels off along x puts its ball of radius 2 (33 lattice points) into
    # the cube, clipped at the cube's face (dx <= 0: 13 + 9 + 1 = 23 points), disjoint from the particle's own 33
    pair = _particles([(12, 20, 20), (12, 20, 25)], ["a", "a"])
    assert pointing_chance(pair, SHAPE, VS, 11, 2) == pytest.approx(33 / 11**3)
    assert pointing_chance(pair, SHAPE, VS, 11, 2, any_instance=True) == pytest.approx(56 / 11**3)
    assert pointing_chance(pair.assign(**{"class": ["a", "b"]}), SHAPE, VS, 11, 2, any_instance=True) == \
        pytest.approx(33 / 11**3)
    assert pointing_chance(inside, SHAPE, VS, 11, 3, any_instance=True) == pytest.approx(123 / 11**3)  # 11+ apart


def test_peak_kinds_sorts_maxima_by_the_particle_they_lie_on():
    truth = _particles([(5, 5, 5), (5, 5, 20), (5, 20, 5), (5, 20, 9)], ["a", "a", "b", "a"])
    # own (1 voxel off); particle 1's on particle 0 (its class); particle 2's (b) on particle 1 (another class);
    # particle 3's 2 voxels from particle 2 (b) and 2 from itself: own comes first
    peaks = np.array([(5, 5, 6), (5, 5, 5), (5, 6, 20), (5, 20, 7)], dtype=float)
    np.testing.assert_array_equal(peak_kinds(peaks, truth, VS, 3), ["own", "same_class", "other_class", "own"])
    far = np.array([(5, 30, 30)] * 4, dtype=float)
    np.testing.assert_array_equal(peak_kinds(far, truth, VS, 3), ["none"] * 4)


def test_class_at_centre_is_the_largest_competing_class(tmp_path):
    h = np.zeros((len(CLASSES), *SHAPE), np.float32)
    values = [(2, 1, 9), (1, 2, 9), (0, 3, 0), (0, 1, 0), (1, 0, 9), (-1, -2, 0)]  # (a, b, background)
    for (z, y, x), v in zip(CENTRES, values):
        h[:, z, y, x] = v
    tomo = write_tomogram(tmp_path / "t.mrc", np.zeros(SHAPE, np.float32), VOXEL)
    store = open_store(build_store(tmp_path / "s.zarr", {"respond": h}, CLASSES, VOXEL, tomo))
    # background (9) is highest at three centres but never competes
    predicted = class_at_centres(store.heatmap("respond"), _particles(CENTRES, NAMES), VS, CLASSES)
    np.testing.assert_array_equal(predicted, ["a", "b", "b", "b", "a", "a"])
    assert (predicted == np.array(NAMES, dtype=object)).mean() == pytest.approx(4 / 6)


def test_best_threshold_maximises_f1():
    truth = _particles([(5, 5, 5), (5, 5, 20), (5, 20, 5)], ["a", "a", "b"])
    # three right picks scored 5, 4, 1 and two wrong ones scored 3 and 0.5
    picks = _particles([(5, 5, 5), (5, 5, 20), (5, 20, 5), (15, 30, 30), (15, 30, 50)], ["a", "a", "b", "a", "b"])
    picks["score"] = [5.0, 4.0, 1.0, 3.0, 0.5]
    threshold, score = best_threshold(picks, truth, 20.0, ["a", "b"])
    assert threshold == 1.0 and score.f1 == pytest.approx(6 / 7)  # P 3/4, R 1: better than t = 4 (P 1, R 2/3)


def test_baseline_finds_bright_blobs_and_honours_polarity():
    # blobs at four particles' centres, two further blobs 4 voxels off (misses at radius 3)
    shifted = [(z, y, x + (4 if i in (1, 4) else 0)) for i, (z, y, x) in enumerate(CENTRES)]
    volume = gaussian_blobs(SHAPE, shifted, [1.0] * len(CENTRES), sigma=2.0)
    particles = _particles(CENTRES, NAMES)
    hits = baseline_pointing(volume, particles, 11, 3, sigma=1.0, bright=True)
    np.testing.assert_array_equal(hits, [True, False, True, True, False, True])
    np.testing.assert_array_equal(baseline_pointing(-volume, particles, 11, 3, sigma=1.0, bright=False), hits)
    assert not baseline_pointing(volume, particles, 11, 3, sigma=1.0, bright=False).any()  # wrong polarity


def _blob_store(tmp_path):
    """Respond-CAM: a blob at every particle's centre in its true class (background everywhere lower);
    Grad-CAM: the blobs 5 voxels off along y and in the other class."""
    centres = np.asarray(CENTRES)
    truth = _particles(CENTRES, NAMES)
    respond = np.zeros((len(CLASSES), *SHAPE), np.float32)
    gradcam = np.zeros_like(respond)
    for k, name in enumerate(["a", "b"]):
        mine = [tuple(c) for c, n in zip(centres, NAMES) if n == name]
        respond[k] = gaussian_blobs(SHAPE, mine, [2.0] * len(mine), sigma=1.5)
        gradcam[1 - k] = gaussian_blobs(SHAPE, [(z, y + 5, x) for z, y, x in mine], [2.0] * len(mine), sigma=1.5)
    respond[2] = gradcam[2] = 0.1
    volume = gaussian_blobs(SHAPE, CENTRES, [1.0] * len(CENTRES), sigma=2.0)
    tomo = write_tomogram(tmp_path / "t.mrc", volume, VOXEL)
    store = build_store(tmp_path / "s.zarr", {"respond": respond, "gradcam": gradcam}, CLASSES, VOXEL, tomo)
    return open_store(store), truth, volume, tomo


def test_evaluate_localisation_end_to_end(tmp_path):
    store, truth, volume, _ = _blob_store(tmp_path)
    r = evaluate_localisation(store, truth, volume, bright=True, cube=11, radius=3, sigma=1.0, pick_radius=4,
                              pick_threshold=0.5)
    respond, gradcam = r["methods"]["respond"], r["methods"]["gradcam"]
    assert r["n"] == 6 and r["classes"] == ["a", "b"]
    assert respond["pointing"] == 1.0 and respond["class_accuracy"] == 1.0
    picks = respond["picks"]
    assert (picks["n_picks"], picks["precision"], picks["recall"], picks["f1"], picks["best_f1"]) == (6, 1, 1, 1, 1)
    assert gradcam["pointing"] == 0.0 and gradcam["class_accuracy"] == 0.0 and gradcam["picks"]["f1"] == 0.0
    every = {"pointing": 1.0, "pointing_any_instance": 1.0, "class_accuracy": 1.0}
    assert respond["per_class"] == {"a": every, "b": every}
    assert respond["peaks"] == {"own": 6, "same_class": 0, "other_class": 0, "none": 0}
    assert gradcam["pointing_any_instance"] == 0.0 and gradcam["peaks"]["own"] == 0
    assert r["baseline"]["pointing"] == 1.0 and r["baseline"]["pointing_any_instance"] == 1.0
    assert r["chance"]["pointing_any_instance"] == pytest.approx(
        pointing_chance(truth, SHAPE, VS, 11, 3, any_instance=True))
    assert r["chance"]["class_accuracy"] == 0.5
    assert r["chance"]["pointing"] == pytest.approx(pointing_chance(truth, SHAPE, VS, 11, 3))
    assert 0 <= r["chance"]["picks_f1"] < 0.2  # 6 random picks in 61k voxels rarely land within 3 voxels
    # the picks' own per-class threshold from the data also keeps exactly the six blobs
    default = evaluate_localisation(store, truth, volume, bright=True, cube=11, radius=3, sigma=1.0, pick_radius=4)
    picks = default["methods"]["respond"]["picks"]
    assert sorted(picks["thresholds"]) == ["a", "b"] and (picks["n_picks"], picks["f1"]) == (6, 1.0)


def test_neighbours_in_the_cube_count_for_the_pointing_game_at_any_instance(tmp_path):
    """A cube of 61 voxels holds neighbours: channel a peaks highest on particle 2, so particles 0 and 4 (class a)
    point at their neighbour of the same class; channel b has spurious peaks on particle 4 (class a) and on no
    particle, which the b particles' cubes find instead of them."""
    rng = np.random.default_rng(1)
    h = rng.uniform(0, 0.5, size=(len(CLASSES), *SHAPE)).astype(np.float32)
    for (z, y, x), name in zip(CENTRES, NAMES):
        h[CLASSES.index(name), z, y, x] = 1.0
    h[0, 12, 20, 26] = 2.0  # particle 2 (a) brighter than particles 0 and 4 (a)
    h[1, 12, 20, 50] = 3.0  # a 'b' peak on particle 4 (a): in particle 5's cube
    h[1, 12, 35, 14] = 5.0  # a 'b' peak on no particle: in the cubes of particles 1 and 3
    volume = gaussian_blobs(SHAPE, CENTRES, [1.0] * len(CENTRES), sigma=2.0)
    tomo = write_tomogram(tmp_path / "t.mrc", volume, VOXEL)
    store = open_store(build_store(tmp_path / "s.zarr", {"respond": h}, CLASSES, VOXEL, tomo))
    truth = _particles(CENTRES, NAMES)
    r = evaluate_localisation(store, truth, volume, bright=True, cube=61, radius=3, sigma=1.0, pick_threshold=0.9)
    respond = r["methods"]["respond"]
    assert respond["peaks"] == {"own": 1, "same_class": 2, "other_class": 1, "none": 2}
    assert respond["pointing"] == pytest.approx(1 / 6) and respond["pointing_any_instance"] == pytest.approx(3 / 6)
    assert respond["per_class"]["a"]["pointing_any_instance"] == 1.0
    assert respond["per_class"]["b"]["pointing_any_instance"] == 0.0
    assert r["chance"]["pointing_any_instance"] > r["chance"]["pointing"]


def test_bad_particle_tables_are_refused(tmp_path):
    store, truth, volume, _ = _blob_store(tmp_path)
    with pytest.raises(ClassError, match="'c'"):
        evaluate_localisation(store, _particles([(5, 5, 5)], ["c"]), volume, bright=True)
    with pytest.raises(ClassError, match="background"):
        evaluate_localisation(store, _particles([(5, 5, 5)], ["background"]), volume, bright=True)
    with pytest.raises(InputError, match="outside the tomogram"):
        evaluate_localisation(store, _particles([(5, 5, 99)], ["a"]), volume, bright=True)
    with pytest.raises(InputError, match="do not belong together"):
        evaluate_localisation(store, truth, volume[:, :, :32], bright=True)


def test_cli_json_table_and_errors(tmp_path):
    store, truth, _, _ = _blob_store(tmp_path)
    csv = tmp_path / "truth.csv"
    write_particles(truth, csv, "csv")
    args = ["evaluate", "localisation", store.path, str(csv), "--cube", "11", "--radius", "3", "--sigma", "1",
            "--pick-radius", "4", "--pick-threshold", "0.5", "--particles-look", "bright"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["methods"]["respond"]["picks"]["f1"] == 1.0 and data["baseline"]["pointing"] == 1.0
    assert data["tomogram"].endswith("t.mrc") and data["polarity"] == "bright"
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0 and "Respond-CAM" in table.output and "no model" in table.output


def test_cli_reads_a_multi_tomogram_relion5_truth_table(tmp_path):
    """The store's tomogram is t.mrc, named 't': its rows of a RELION 5 table (centred on it) are the truth, the
    other tomogram's rows are left out."""
    store, truth, _, _ = _blob_store(tmp_path)
    other = TomogramInfo("u", (10, 10, 10), 5.0)
    table = pd.concat([truth, from_voxels(other, "a", [(1, 1, 1)] * 3)], ignore_index=True)
    star = tmp_path / "truth.star"
    write_particles(table, star, "relion5", tomograms={"t": TomogramInfo("t", SHAPE, VOXEL), "u": other})
    result = CliRunner().invoke(app, ["evaluate", "localisation", store.path, str(star), "--cube", "11", "--radius",
                                      "3", "--sigma", "1", "--pick-radius", "4", "--pick-threshold", "0.5",
                                      "--particles-look", "bright", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["n"] == len(CENTRES) and data["methods"]["respond"]["pointing"] == 1.0
    assert data["methods"]["respond"]["picks"]["f1"] == 1.0


def test_cli_reads_data_portal_points_with_the_class_given(tmp_path):
    """A data-portal file names no class (its stem, 'points', is none of the store's): --particles-class names it;
    its voxels are the explained tomogram's (or --particles-voxel-size's)."""
    store, truth, _, _ = _blob_store(tmp_path)
    points = tmp_path / "points.ndjson"
    write_particles(truth[truth["class"] == "a"], points, "ndjson", tomograms={"t": TomogramInfo("t", SHAPE, VOXEL)})
    args = ["evaluate", "localisation", store.path, str(points), "--cube", "11", "--radius", "3", "--sigma", "1",
            "--pick-radius", "4", "--pick-threshold", "0.5", "--particles-look", "bright", "--json"]
    result = CliRunner().invoke(app, [*args, "--particles-class", "a"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["n"] == NAMES.count("a") and data["methods"]["respond"]["pointing"] == 1.0
    halved = CliRunner().invoke(app, [*args, "--particles-class", "a", "--particles-voxel-size", "5"])
    assert json.loads(halved.output)["methods"]["respond"]["pointing"] < 1.0  # positions at half the distance
    unnamed = CliRunner().invoke(app, args)
    assert isinstance(unnamed.exception, ClassError) and "'points'" in str(unnamed.exception)


def _main(monkeypatch, capsys, args: list[str]) -> tuple[int, str]:
    """Run the console entry point (which turns errors into one line and an exit code): (code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["tomocam", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    return int(stop.value.code or 0), capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys):
    store, truth, _, _ = _blob_store(tmp_path)
    csv = tmp_path / "truth.csv"
    write_particles(truth, csv, "csv")
    args = ["evaluate", "localisation", store.path, str(csv)]
    # without --particles-look the polarity comes from the store's model, which a hand-built store lacks
    code, err = _main(monkeypatch, capsys, args)
    assert code == 2 and "--particles-look" in err and len(err.strip().splitlines()) == 1
    write_particles(truth.assign(**{"class": "zzz"}), csv, "csv", overwrite=True)
    code, err = _main(monkeypatch, capsys, [*args, "--particles-look", "bright"])
    assert code == 2 and "'zzz'" in err and "Traceback" not in err
    code, err = _main(monkeypatch, capsys, [*args, "--particles-look", "grey"])
    assert code == 2 and "bright' or 'dark'" in err


class _Recording:
    """An array that counts the voxels read through it (what a lazy store or memory map would load)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.read = data, data.shape, 0

    def __getitem__(self, key):
        out = self.data[key]
        self.read += np.size(out)
        return out


def test_only_cubes_around_particles_are_read():
    particles = _particles(CENTRES, NAMES)
    heatmap = _Recording(np.zeros((len(CLASSES), *SHAPE), np.float32))
    pointing(heatmap, particles, CLASSES, size=11, radius=3)
    assert 0 < heatmap.read <= len(CENTRES) * 11**3  # one class's cube per particle, not the volume
    heatmap.read = 0
    class_at_centres(heatmap, particles, VS, CLASSES)
    assert heatmap.read == len(CENTRES) * len(CLASSES)  # one voxel of every class per particle
    volume = _Recording(np.zeros(SHAPE, np.float32))
    baseline_pointing(volume, particles, 11, 3, sigma=1.0, bright=True)
    assert volume.read <= len(CENTRES) * (11 + 2 * 4) ** 3  # the cube and a halo of 4 sigma


def test_on_an_explain_store_at_native_resolution(tmp_path):
    """A real explain run (a matched-filter model whose maps are known to peak at the right class): the cubes
    read lazily through the store's full-grid reader give the pointing and class of the whole computed field."""
    from distributed import Client, LocalCluster
    from explain_models import SHAPES, matched_filter_checkpoint, particles_volume, write_mrc

    from tomocam.pipeline import ExplainConfig, explain_tomogram

    shape = (32, 48, 48)
    volume, placed = particles_volume(shape, n=12, seed=3)
    mrc = write_mrc(tmp_path / "t.mrc", volume)
    config = ExplainConfig(tomogram=str(mrc), output=str(tmp_path / "t.zarr"),
                           model=str(matched_filter_checkpoint(tmp_path / "mf.pt")), methods=("respond",), block=2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            store = open_store(explain_tomogram(config, client=client).store)
    names = list(SHAPES)
    truth = _particles([c for _, c in placed], [names[k] for k, _ in placed])
    r = evaluate_localisation(store, truth, volume, bright=True, cube=11, radius=2, sigma=1.0, pick_radius=4)
    field = store.full_grid("respond").compute()  # (k, z, y, x): the oracle, whole
    cubes = [cube_around(np.array(c), 11, shape) for _, c in placed]
    hits = [np.linalg.norm(extreme_voxel(field[(k, *cube.slices)]) - cube.centre) <= 2
            for (k, _), cube in zip(placed, cubes)]
    at_centre = [field[(slice(None), *c)].argmax() == k for k, c in placed]
    assert r["methods"]["respond"]["pointing"] == pytest.approx(np.mean(hits))
    assert r["methods"]["respond"]["class_accuracy"] == pytest.approx(np.mean(at_centre))
    assert np.mean(at_centre) >= 0.9 and r["methods"]["respond"]["pointing"] >= 0.9

