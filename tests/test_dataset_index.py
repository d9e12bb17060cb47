"""The dataset index: every row read back as written, rewritten whole through a rename, and merged with the rows
of other runs sharing the folder (the tasks of a SLURM array)."""

from __future__ import annotations

import csv
import multiprocessing

from tomocam.dataset import INDEX_NAME, DatasetIndex, IndexRow, read_index


def test_rows_round_trip_with_empty_numbers_and_every_column(tmp_path):
    rows = [IndexRow("a", "/d/a.mrc", "complete", 27, 1.25, 4096, "rod:20;small:7", "w1 | w2", ""),
            IndexRow("b", "/d/b.mrc", "failed", error="tomogram '/d/b.mrc' has NaN or Inf voxels"),
            IndexRow("c", "/d/c.mrc")]
    DatasetIndex(tmp_path, rows)
    assert read_index(tmp_path) == rows
    with (tmp_path / INDEX_NAME).open(newline="") as f:
        header = next(csv.reader(f))
    assert header == ["name", "path", "status", "tiles", "seconds", "store_bytes", "top_classes", "warnings", "error"]


def test_update_rewrites_the_file_through_a_rename_and_leaves_no_temporary_file(tmp_path):
    index = DatasetIndex(tmp_path, [IndexRow("a", "/d/a.mrc"), IndexRow("b", "/d/b.mrc")])
    before = (tmp_path / INDEX_NAME).stat().st_ino
    index.update("b", status="running")
    assert (tmp_path / INDEX_NAME).stat().st_ino != before  # a new file renamed over the old: never half-written
    assert [r.status for r in read_index(tmp_path)] == ["pending", "running"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tomocam-dataset.lock", INDEX_NAME]


def _task(folder: str, task: int) -> None:
    index = DatasetIndex(folder, [IndexRow(f"t{task}-{i}", f"/d/{task}-{i}.mrc") for i in range(5)])
    for i in range(5):
        index.update(f"t{task}-{i}", status="complete", tiles=i)


def test_runs_sharing_a_folder_keep_each_others_rows(tmp_path):
    procs = [multiprocessing.get_context("spawn").Process(target=_task, args=(str(tmp_path), t)) for t in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    rows = read_index(tmp_path)
    assert sorted(r.name for r in rows) == sorted(f"t{t}-{i}" for t in range(3) for i in range(5))
    assert all(r.status == "complete" and r.tiles == int(r.name[-1]) for r in rows)
