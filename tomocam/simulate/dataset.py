"""The on-disk subtomogram dataset: one zarr v3 group.

Layout::

    volumes   (n, s, s, s) float32, chunks (1, s, s, s)    the observed boxes (z, y, x)
    labels    (n,) int32                                   class index of each box
    origin/tomogram (n,) int32                             boxes cut from tomograms (tomocam extract):
    origin/table    (n,) int32                               index into attrs tomograms / tables (-1: none),
    origin/row      (n,) int64                               the particle's row in its table (-1: background),
    origin/centre   (n, 3) float64                           the box centre x, y, z in angstrom (tomogram frame)
    attrs["tomocam_dataset"] = {classes, voxel_size, box, n_per_class, seed, polarity, version, command, complete,
                                 simulated: acquisition, sampling, sources; extracted: extract, tomograms, tables}

The completion marker ``complete: true`` is written last; readers refuse a dataset without it, so an
interrupted run never looks like a finished one. An extraction also records its plan's hash and the tomograms
written so far (``plan_sha256``, ``done``): run again on the same inputs, it finishes the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tomocam.errors import InputError, OutputError

ATTR_KEY = "tomocam_dataset"


@dataclass
class Dataset:
    """An opened dataset: ``volumes`` is a lazily read zarr array ``(n, s, s, s)``, ``labels`` ``(n,)`` int64,
    ``box_tomograms`` ``(n,)`` the name of each box's tomogram (``None`` for a simulated dataset)."""

    path: Path
    volumes: Any
    labels: np.ndarray
    classes: list[str]
    voxel_size: float
    attrs: dict
    box_tomograms: np.ndarray | None = None

    @property
    def tomograms(self) -> list[str]:
        """Names of the tomograms the boxes were cut from (``[]`` for a simulated dataset)."""
        return [str(t["name"]) for t in self.attrs.get("tomograms", [])]

    @property
    def box(self) -> int:
        """Edge length of the cubic boxes, in voxels."""
        return int(self.volumes.shape[-1])

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def create_dataset(path: Path, n: int, box: int, attrs: dict, *, overwrite: bool = False) -> tuple[Any, Any, Any]:
    """Create the arrays of a new dataset (incomplete until :func:`mark_complete`); returns (group, volumes, labels)."""
    import zarr

    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"output '{path}' exists already: choose another path or pass --overwrite")
    try:
        group = zarr.open_group(str(path), mode="w", zarr_format=3)
        volumes = group.create_array("volumes", shape=(n, box, box, box), chunks=(1, box, box, box), dtype="float32")
        labels = group.create_array("labels", shape=(n,), chunks=(max(n, 1),), dtype="int32")
        group.attrs[ATTR_KEY] = {**attrs, "complete": False}
    except OSError as err:
        raise OutputError(f"cannot create dataset '{path}': {err}") from err
    return group, volumes, labels


def write_origin(group: Any, *, tomogram: np.ndarray, table: np.ndarray, row: np.ndarray,
                 centre: np.ndarray) -> None:
    """Write where each box came from (``origin/``, see the layout): ``(n,)``, ``(n,)``, ``(n,)``, ``(n, 3)``."""
    n = len(tomogram)
    for name, data, dtype in (("tomogram", tomogram, "int32"), ("table", table, "int32"), ("row", row, "int64"),
                              ("centre", centre, "float64")):
        array = group.create_array(f"origin/{name}", shape=(n, *np.shape(data)[1:]),
                                   chunks=(max(n, 1), *np.shape(data)[1:]), dtype=dtype)
        if n:
            array[:] = np.asarray(data, dtype=dtype)


def reopen_unfinished(path: Path, plan_sha256: str) -> Any | None:
    """The group of the unfinished dataset at ``path`` written for the same plan (attribute ``plan_sha256``),
    reopened to finish it; ``None`` when nothing is at ``path``. Raises :class:`OutputError` for anything else
    there: a complete dataset, or an unfinished one of another plan (both replaced only with ``overwrite``)."""
    import zarr

    path = Path(path)
    if not path.exists():
        return None
    try:
        group = zarr.open_group(str(path), mode="r+")
        meta = dict(group.attrs.get(ATTR_KEY, {}))
    except Exception:  # zarr raises several unrelated types for a non-zarr folder
        meta = {}
    if meta and not meta.get("complete") and meta.get("plan_sha256") == plan_sha256:
        return group
    what = "a finished dataset" if meta.get("complete") else "an unfinished dataset of other inputs" if meta else \
        "something that is not an unfinished dataset of these inputs"
    raise OutputError(f"output '{path}' exists already ({what}): choose another path or pass --overwrite")


def record_done(group: Any, part: str) -> None:
    """Record that ``part`` of an unfinished dataset is written (attribute ``done``), so a rerun skips it."""
    meta = dict(group.attrs[ATTR_KEY])
    meta["done"] = sorted({*meta.get("done", []), part})
    group.attrs[ATTR_KEY] = meta


def mark_complete(group: Any) -> None:
    """Write the completion marker, last."""
    meta = dict(group.attrs[ATTR_KEY])
    meta["complete"] = True
    group.attrs[ATTR_KEY] = meta


def open_dataset(path: Path) -> Dataset:
    """Open a complete tomocam dataset, or raise :class:`InputError` saying what is wrong."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise InputError(f"dataset '{path}' does not exist")
    try:
        group = zarr.open_group(str(path), mode="r")
        meta = dict(group.attrs.get(ATTR_KEY, {}))
    except Exception as err:  # zarr raises several unrelated types for a non-zarr folder
        raise InputError(f"'{path}' is not a zarr dataset: {err}") from err
    if not meta:
        raise InputError(f"'{path}' is not a tomocam dataset (no '{ATTR_KEY}' attributes)")
    if not meta.get("complete"):
        raise InputError(f"dataset '{path}' is incomplete (the run that wrote it did not finish): make it again")
    volumes, labels = group["volumes"], np.asarray(group["labels"][:], dtype=np.int64)
    classes = list(meta["classes"])
    if volumes.ndim != 4 or volumes.shape[0] != labels.shape[0]:
        raise InputError(f"dataset '{path}': volumes {volumes.shape} and labels {labels.shape} do not match")
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise InputError(f"dataset '{path}': labels outside 0..{len(classes) - 1}")
    box_tomograms = None
    if "tomograms" in meta and "origin" in group:
        names = np.asarray([str(t["name"]) for t in meta["tomograms"]], dtype=object)
        box_tomograms = names[np.asarray(group["origin/tomogram"][:], dtype=np.int64)]
    return Dataset(path, volumes, labels, classes, float(meta["voxel_size"]), meta, box_tomograms)
