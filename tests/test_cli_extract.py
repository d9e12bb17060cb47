"""`tomocam extract` and `tomocam train --split-by tomogram` through the CLI: a simulated tomogram with its particle
table -> extract -> train, what the dataset and checkpoint record, and bad input as one line and exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tomocam.cli.main import main
from tomocam.models import load_checkpoint
from tomocam.simulate import open_dataset


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["tomocam", *args])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tomograms(tmp_path_factory) -> list[Path]:
    """Three small simulated tomograms of three shapes at 20 A, each with its particle table beside it."""
    from tomocam.simulate import Acquisition, builtin_structures, simulate_tomogram, write_tomogram

    folder = tmp_path_factory.mktemp("tomos")
    shapes = builtin_structures(["shell", "rod", "disc"], voxel_size=20.0)
    paths = []
    for i in range(3):
        sim = simulate_tomogram((24, 56, 56), shapes, 9, acquisition=Acquisition(snr=4.0), seed=i)
        paths.append(write_tomogram(sim, folder / f"tomo{i + 1}.mrc")["tomogram"])
    return paths


def test_simulate_tomogram_extract_train_records_tomograms_tables_and_split(tomograms, tmp_path, monkeypatch,
                                                                          capsys):
    # the simulate command writes the tables extract reads
    code, out, err = run(monkeypatch, capsys, "simulate", "tomogram", str(tmp_path / "cli.mrc"), "--shape",
                         "24,40,40", "-n", "2", "--shapes", "shell,rod", "--voxel-size", "20")
    assert code == 0, err
    tables = [str(t.with_name(t.stem + "_particles.csv")) for t in tomograms]
    data = tmp_path / "d.zarr"
    code, out, err = run(monkeypatch, capsys, "extract", *map(str, tomograms), *[a for t in tables for a in ("-p", t)],
                         "-o", str(data), "--box", "16", "--per-particle", "3", "--max-shift", "2", "--background",
                         "0.5x", "--radius", "150", "-j", "1")
    assert code == 0, err
    ds = open_dataset(data)
    assert ds.classes == ["disc", "rod", "shell", "background"] and ds.tomograms == ["tomo1", "tomo2", "tomo3"]
    assert [t["path"] for t in ds.attrs["tables"]] == [str(Path(t).resolve()) for t in tables]
    assert sum(t["boxes"] for t in ds.attrs["tomograms"]) == len(ds) > 0
    assert f"wrote {len(ds)} boxes" in out
    model = tmp_path / "m.pt"
    code, out, err = run(monkeypatch, capsys, "train", str(data), "-o", str(model), "--test-tomograms", "tomo2",
                         "--flips", "--epochs", "2", "--batch-size", "8", "--fc-width", "16", "--device", "cpu")
    assert code == 0, err
    assert "test tomograms tomo2" in out
    _, meta = load_checkpoint(model)
    p = meta.provenance
    assert p["split"]["by"] == "tomogram" and p["split"]["test_tomograms"] == ["tomo2"]
    assert p["split"]["train_tomograms"] == ["tomo1", "tomo3"] and p["augment"] == "flips"
    assert p["split"]["n_test"] == int((ds.box_tomograms == "tomo2").sum())
    assert [t["name"] for t in p["dataset_attrs"]["tomograms"]] == ["tomo1", "tomo2", "tomo3"]
    assert p["dataset_attrs"]["tables"] == ds.attrs["tables"] and meta.classes == ds.classes
    assert meta.input_size == 16 and meta.voxel_size == 20.0 and len(p["history"]) == 2


def _bad(tmp: Path, tomo: Path) -> dict[str, tuple[list[str], str]]:
    table = pd.read_csv(tomo.with_name(tomo.stem + "_particles.csv"))
    outside = table.copy()
    outside.loc[2, "x_angstrom"] = 5000.0
    outside.to_csv(tmp / "outside.csv", index=False)
    named = pd.DataFrame({"tomogram": ["tomo1", "TS_99"], "class": ["rod", "rod"], "x": [300.0] * 2,
                          "y": [300.0] * 2, "z": [200.0] * 2})
    named.to_csv(tmp / "named.csv", index=False)
    t = [str(tomo)]
    return {
        "outside": ([*t, "-p", str(tmp / "outside.csv")], "row 3 of"),
        "class not in --classes": ([*t, "-p", str(tomo.with_name("tomo1_particles.csv")), "--classes", "rod,disc"],
                                   "row 1 of"),
        "unknown tomogram": ([*t, "-p", str(tmp / "named.csv")], "row 2 of"),
        "background without radius": ([*t, "-p", str(tmp / "named.csv"), "--background", "5"], "--radius"),
        "bad background": ([*t, "-p", str(tmp / "named.csv"), "--background", "many"], "--background"),
    }


@pytest.mark.parametrize("case", ["outside", "class not in --classes", "unknown tomogram",
                                  "background without radius", "bad background"])
def test_bad_input_is_one_line_and_exit_2_naming_the_row(tomograms, tmp_path, monkeypatch, capsys, case):
    args, expected = _bad(tmp_path, tomograms[0])[case]
    code, out, err = run(monkeypatch, capsys, "extract", *args, "-o", str(tmp_path / "d.zarr"), "-j", "1")
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d.zarr").exists()  # nothing is written before the input is checked


def test_a_class_too_small_for_a_split_by_tomogram_is_named(tomograms, tmp_path, monkeypatch, capsys):
    table = pd.read_csv(tomograms[0].with_name("tomo1_particles.csv"))
    keep = table[table.class_name != "disc"]
    keep = pd.concat([keep, table[table.class_name == "disc"].iloc[:1]])  # one disc in tomo1 only
    keep.to_csv(tmp_path / "tomo1_few.csv", index=False)
    other = pd.read_csv(tomograms[1].with_name("tomo2_particles.csv"))
    other.to_csv(tmp_path / "tomo2_all.csv", index=False)
    data = tmp_path / "d.zarr"
    code, _, err = run(monkeypatch, capsys, "extract", str(tomograms[0]), str(tomograms[1]), "-p",
                       str(tmp_path / "tomo1_few.csv"), "-p", str(tmp_path / "tomo2_all.csv"), "-o", str(data),
                       "--box", "16", "-j", "1")
    assert code == 0, err
    assert int((open_dataset(data).labels == 0).sum()) >= 1
    code, _, err = run(monkeypatch, capsys, "train", str(data), "-o", str(tmp_path / "m.pt"), "--test-tomograms",
                       "tomo2", "--epochs", "1", "--device", "cpu")
    assert code == 2 and "class 'disc'" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.pt").exists()
    code, _, err = run(monkeypatch, capsys, "train", str(data), "-o", str(tmp_path / "m.pt"), "--test-tomograms",
                       "tomo9", "--epochs", "1", "--device", "cpu")
    assert code == 2 and "tomo9" in err, err
    np.testing.assert_equal(code, 2)
