"""`tomocam extract` and `tomocam train --split-by tomogram` through the CLI: a simulated tomogram with its particle
table -> extract -> train, what the dataset and checkpoint record, and bad input as one line and exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from tomocam.cli.main import main
from tomocam.models import load_checkpoint
from tomocam.particles import particle_table, write_particles
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
        sim = simulate_tomogram((32, 56, 56), shapes, 9, acquisition=Acquisition(snr=4.0), seed=i)
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
    code, out, err = run(monkeypatch, capsys, "info", str(model))
    assert code == 0, err
    text = " ".join(out.split())
    assert "test tomograms tomo2" in text and "tomo1 (" in text and "tomo1_particles.csv" in text


def _bad(tmp: Path, tomo: Path) -> dict[str, tuple[list[str], str]]:
    table = pd.read_csv(tomo.with_name(tomo.stem + "_particles.csv"))
    outside = table.copy()
    outside.loc[2, "x_angstrom"] = 5000.0
    outside.to_csv(tmp / "outside.csv", index=False)
    write_particles(particle_table(["tomo1", "TS_99"], "rod", [[300.0, 300.0, 200.0]] * 2), tmp / "named.csv",
                    "csv")
    t = [str(tomo)]
    finer = tmp / "finer.mrc"
    with mrcfile.new(finer) as mrc:
        mrc.set_data(np.zeros((40, 40, 40), np.float32))
        mrc.voxel_size = 10.0
    return {
        "voxel sizes differ": ([*t, str(finer), "-p", str(tmp / "named.csv")], "--voxel-size"),
        "outside": ([*t, "-p", str(tmp / "outside.csv")], "row 3 of"),
        "class not in --classes": ([*t, "-p", str(tomo.with_name("tomo1_particles.csv")), "--classes", "rod,disc"],
                                   "row 1 of"),
        "unknown tomogram": ([*t, "-p", str(tmp / "named.csv")], "row 2 of"),
        "background without radius": ([*t, "-p", str(tmp / "named.csv"), "--background", "5"], "--radius"),
        "bad background": ([*t, "-p", str(tmp / "named.csv"), "--background", "many"], "--background"),
    }


@pytest.mark.parametrize("case", ["outside", "class not in --classes", "unknown tomogram", "voxel sizes differ",
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


@pytest.mark.parametrize("fmt", ["relion5", "relion3", "ndjson"])
def test_a_table_in_another_format_gives_the_same_boxes(tomograms, tmp_path, monkeypatch, capsys, fmt):
    from tomocam.particles import TomogramInfo, read_particles
    from tomocam.read import open_tomogram

    tomo = tomograms[0]
    info = {"tomo1": TomogramInfo("tomo1", open_tomogram(tomo).shape, 20.0)}
    csv = tomo.with_name("tomo1_particles.csv")
    frame = read_particles(csv, tomograms=info, tomogram="tomo1")
    keep = "disc,rod,shell"
    if fmt == "ndjson":  # the data portal's points: one class a file, named after the file
        inner = frame[(frame["z"] / 20.0).between(8, 15)]  # a class with a particle away from the faces
        name = str(inner["class"].iloc[0])
        frame = frame[frame["class"] == name]
        keep = ",".join([name] + [f"{c}=-" for c in ("disc", "rod", "shell") if c != name])
    other = tmp_path / (f"{frame['class'].iloc[0]}.ndjson" if fmt == "ndjson" else "tomo1_particles.star")
    write_particles(frame, other, fmt, tomograms=info)
    datasets = []
    for i, (table, classes) in enumerate(((csv, keep), (other, keep.split(",")[0] if fmt == "ndjson" else keep))):
        code, _, err = run(monkeypatch, capsys, "extract", str(tomo), "-p", str(table), "-o", str(tmp_path / f"{i}"),
                           "--box", "8", "-j", "1", "--classes", classes)
        assert code == 0, err
        datasets.append(open_dataset(tmp_path / f"{i}"))
    ours, theirs = datasets
    assert ours.classes == theirs.classes and np.array_equal(ours.labels, theirs.labels) and len(ours) > 0
    np.testing.assert_array_equal(np.asarray(ours.volumes[:]), np.asarray(theirs.volumes[:]))
