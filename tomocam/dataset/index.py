"""The dataset index: ``OUT/tomocam-dataset.csv``, one row per tomogram, beside the stores.

Columns: ``name`` (the store is ``OUT/<name>.zarr``), ``path`` (the tomogram), ``status`` (``pending``,
``running``, ``complete``, ``failed`` or ``interrupted``), ``tiles``, ``seconds`` (phases 1 + 2 + finalize of the
run that completed it), ``store_bytes`` (on disk), ``top_classes`` (``class:tiles`` of the classes predicted for
most tiles, ``;``-separated), ``warnings`` (``|``-separated) and ``error`` (the one-line reason of a failure).

The file is rewritten whole after every change, through a temporary file renamed over it, so a reader (or a
killed run) never sees half a file. Several runs may share one output folder (the tasks of a SLURM array): each
rewrite holds a lock on ``OUT/.tomocam-dataset.lock`` and merges its rows into those on disk, so no run drops
another's rows.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: File name of the index in the output folder.
INDEX_NAME = "tomocam-dataset.csv"

STATUSES = ("pending", "running", "complete", "failed", "interrupted")


@dataclass(frozen=True)
class IndexRow:
    """One tomogram of the dataset (see the module docstring for the columns)."""

    name: str
    path: str
    status: str = "pending"
    tiles: int | None = None
    seconds: float | None = None
    store_bytes: int | None = None
    top_classes: str = ""
    warnings: str = ""
    error: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; expected one of {', '.join(STATUSES)}")


COLUMNS = tuple(f.name for f in dataclasses.fields(IndexRow))


def _from_csv(record: dict[str, str]) -> IndexRow:
    """A row as :func:`csv.DictReader` gives it back: empty cells are ``None`` for the numbers."""
    def number(key: str, kind: type) -> int | float | None:
        return kind(record[key]) if record.get(key) else None

    return IndexRow(
        name=record["name"], path=record["path"], status=record["status"],
        tiles=number("tiles", int), seconds=number("seconds", float),  # type: ignore[arg-type]
        store_bytes=number("store_bytes", int),  # type: ignore[arg-type]
        top_classes=record.get("top_classes", ""), warnings=record.get("warnings", ""), error=record.get("error", ""),
    )


def read_index(folder: str | Path) -> list[IndexRow]:
    """The rows of ``folder``'s index, in file order (none when there is no index)."""
    path = Path(folder) / INDEX_NAME
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [_from_csv(r) for r in csv.DictReader(f)]


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".tomocam-dataset.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class DatasetIndex:
    """This run's rows of the index in ``folder``, written through at every :meth:`update` (from any thread)."""

    def __init__(self, folder: str | Path, rows: list[IndexRow]) -> None:
        self.folder = Path(folder)
        self.rows = {r.name: r for r in rows}
        self._lock = threading.Lock()
        with self._lock:
            self._write()

    def update(self, name: str, **fields: object) -> IndexRow:
        """Change the fields of tomogram ``name``'s row and rewrite the index; returns the new row."""
        with self._lock:
            row = self.rows[name] = dataclasses.replace(self.rows[name], **fields)  # type: ignore[arg-type]
            self._write()
        return row

    def _write(self) -> None:
        """Merge this run's rows into the index on disk (others' rows kept, in their order) and replace it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _locked(self.folder):
            merged = {r.name: r for r in read_index(self.folder)} | self.rows
            tmp = self.folder / f".{INDEX_NAME}.{os.getpid()}.tmp"  # one writer per process at a time (the lock)
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                for row in merged.values():
                    writer.writerow({k: "" if v is None else v for k, v in dataclasses.asdict(row).items()})
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.folder / INDEX_NAME)
