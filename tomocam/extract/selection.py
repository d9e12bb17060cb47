"""Which particles a dataset is cut at: particle tables matched to tomogram files, classes kept or merged, and the
checks that name the first offending row.

A table row names its tomogram (``rlnTomoName``, a copick run, a ``tomogram`` column: the particle-table room
reads them all into one frame, :mod:`tomocam.particles`); it is matched to the tomogram file of that name (the
file name without ``.mrc``, ``.rec``, ``.zarr``...). A table that names no tomogram belongs to the only tomogram
given, or to the tomogram whose name starts its file name (``TS_01_particles.csv`` -> ``TS_01``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tomocam.errors import InputError

#: The class of boxes with no particle at their centre (never a table's class).
BACKGROUND = "background"
#: Suffixes a tomogram's name is given without.
TOMOGRAM_SUFFIXES = (".mrc", ".rec", ".map", ".st", ".zarr", ".ome")


def tomogram_name(path: str | Path) -> str:
    """The name tables give a tomogram file: its file name without the suffixes of :data:`TOMOGRAM_SUFFIXES`."""
    name = Path(str(path).rstrip("/")).name
    while Path(name).suffix.lower() in TOMOGRAM_SUFFIXES:
        name = Path(name).stem
    return name


def parse_classes(spec: str | None) -> dict[str, str | None] | None:
    """``--classes`` as a map from a table's class to the dataset's (``None``: drop its rows).

    ``"ribosome,80S=ribosome,membrane=-"`` keeps ``ribosome``, merges ``80S`` into it and drops ``membrane``;
    ``None`` (no option) keeps every class as it is.
    """
    if spec is None:
        return None
    mapping: dict[str, str | None] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        source, _, target = (p.strip() for p in item.partition("="))
        target = target if "=" in item else source
        if not source or not target:
            raise InputError(f"--classes item {item!r} must be NAME, NAME=CLASS or NAME=- (drop its particles)")
        if target == BACKGROUND:
            raise InputError(f"--classes cannot make '{BACKGROUND}': extract makes that class itself (--background)")
        mapping[source] = None if target == "-" else target
    if not any(v is not None for v in mapping.values()):
        raise InputError(f"--classes {spec!r} keeps no class")
    return mapping


@dataclass(frozen=True)
class TableRow:
    """Where a particle came from: the table's path and the row's index in it (0-based, as read)."""

    table: str
    row: int

    def __str__(self) -> str:
        return f"row {self.row + 1} of '{self.table}'"


def owner_of_table(table: Path, names: Sequence[str]) -> str | None:
    """The tomogram a table that names none belongs to: the only one, or the longest name its file name starts
    with; ``None`` if there is no such name."""
    if len(names) == 1:
        return names[0]
    stem = Path(table).name
    matches = [n for n in names if stem.startswith(n)]
    return max(matches, key=len) if matches else None


def select_particles(frame: pd.DataFrame, table: Path, names: Sequence[str], shapes: Mapping[str, Sequence[int]],
                     voxel_sizes: Mapping[str, Sequence[float]], classes: dict[str, str | None] | None
                     ) -> pd.DataFrame:
    """Check one table (the particle-table room's frame) against the tomograms and map its classes.

    Returns the rows kept with columns ``tomogram, class, x, y, z`` (angstrom), ``table``, ``row`` (the row's
    index in the table) and ``class_in_table``. Raises :class:`InputError` naming the first row whose tomogram is
    not given, whose class ``--classes`` does not name, or whose centre lies outside its tomogram.
    """
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame({
        "tomogram": frame["tomogram"].astype(str), "class_in_table": frame["class"].astype(str),
        "x": frame["x"].astype(float), "y": frame["y"].astype(float), "z": frame["z"].astype(float),
        "table": str(table), "row": np.arange(len(frame)),
    })
    unknown = ~out["tomogram"].isin(list(names))
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise InputError(f"{TableRow(str(table), i)} names tomogram '{out['tomogram'][i]}', which is not among the "
                         f"tomograms given ({', '.join(names)})")
    if classes is not None:
        unnamed = ~out["class_in_table"].isin(list(classes))
        if unnamed.any():
            i = int(np.flatnonzero(unnamed)[0])
            c = out["class_in_table"][i]
            raise InputError(f"{TableRow(str(table), i)} has class '{c}', which --classes does not name (add "
                             f"'{c}' to keep it, '{c}=CLASS' to merge it or '{c}=-' to drop it)")
    out["class"] = out["class_in_table"] if classes is None else out["class_in_table"].map(classes)
    if (out["class"] == BACKGROUND).any():
        i = int(np.flatnonzero(out["class"] == BACKGROUND)[0])
        raise InputError(f"{TableRow(str(table), i)} has class '{BACKGROUND}', the class extract keeps for boxes "
                         f"with no particle: rename it (--classes '{BACKGROUND}=NAME') or drop it ('{BACKGROUND}=-')")
    for i, (name, x, y, z) in enumerate(zip(out["tomogram"], out["x"], out["y"], out["z"])):
        voxel = np.asarray([z, y, x]) / np.asarray(voxel_sizes[name])
        if not np.all(np.isfinite(voxel)) or np.any(voxel < -0.5) or np.any(voxel > np.asarray(shapes[name]) - 0.5):
            raise InputError(f"{TableRow(str(table), i)} lies outside tomogram '{name}': (x, y, z) = ({x:g}, {y:g}, "
                             f"{z:g}) A is voxel {tuple(round(float(v), 1) for v in voxel[::-1])} (x, y, z) of a "
                             f"{tuple(shapes[name])[::-1]} (x, y, z) volume; check the table's units and voxel size")
    return out


def check_classes_present(particles: pd.DataFrame, classes: dict[str, str | None] | None) -> None:
    """Raise :class:`InputError` when a class ``--classes`` keeps has no particle in any table."""
    if classes is None:
        return
    missing = sorted(set(c for c in classes.values() if c is not None) - set(particles["class"].dropna()))
    if missing:
        raise InputError(f"--classes keeps {', '.join(repr(m) for m in missing)}, but no table row has that class "
                         f"(the tables' classes: {', '.join(sorted(set(particles['class_in_table'])))})")
