"""tomocam's particle CSV: the table that ``tomocam simulate tomogram`` and ``tomocam picks`` write.

Columns: ``tomogram``, ``class_name``, ``class_index`` (when known), ``x, y, z`` (voxels of the tomogram's grid,
when its voxel size is known), ``x_angstrom, y_angstrom, z_angstrom`` (tomocam's frame), ``score`` and, for oriented
particles, ``r11 .. r33``: the rotation from the particle's frame to the tomogram's, row-major, as the simulator
writes it (RELION's matrix of :func:`tomocam.particles.table.rotation_matrices`). The simulator's ``rot, tilt,
psi`` columns are scipy's angles of that matrix, not RELION's, and are not read. Reading takes the angstrom columns
when present, else the voxel columns times the voxel size, so older files (no ``tomogram`` column; voxels only)
still read when the caller names the tomogram and, for voxels only, its voxel size.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tomocam.errors import InputError
from tomocam.particles.table import ANGLES, TomogramInfo, euler_angles, particle_table, rotation_matrices, rows_of

ANGSTROM = ["x_angstrom", "y_angstrom", "z_angstrom"]
MATRIX = [f"r{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3)]


def read_csv(path: Path, *, tomograms: Mapping[str, TomogramInfo] | None, voxel_size: float | None,
             tomogram: str | None, class_name: str | None) -> pd.DataFrame:
    """A tomocam CSV as a particle table."""
    try:
        raw = pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise InputError(f"particle table '{path}' is not a readable CSV: {err}") from None
    found = ", ".join(map(str, raw.columns))
    if "tomogram" in raw.columns:
        names = raw["tomogram"].astype(str).to_numpy(dtype=object)
    elif tomogram is not None:
        names = np.full(len(raw), tomogram, dtype=object)
    else:
        raise InputError(f"particle table '{path}' does not name its tomogram: add a 'tomogram' column or give the "
                         "tomogram's name")
    keep = rows_of(names, tomogram, f"'{path}'")
    raw, names = raw[keep].reset_index(drop=True), names[keep]
    column = next((c for c in ("class_name", "class") if c in raw.columns), None)
    if column is None and class_name is None:
        raise InputError(f"particle table '{path}' has no class: add a 'class_name' column (found {found})")
    classes: list[str] = raw[column].astype(str).tolist() if column is not None else [str(class_name)] * len(raw)
    if set(ANGSTROM) <= set(raw.columns):
        xyz = raw[ANGSTROM].to_numpy(np.float64)
    elif {"x", "y", "z"} <= set(raw.columns):
        sizes = np.empty((len(raw), 3))
        for name in np.unique(names):
            info = tomograms.get(name) if tomograms is not None else None
            if voxel_size is None and info is None:
                raise InputError(f"particle table '{path}' gives voxels only: add x_angstrom, y_angstrom, z_angstrom "
                                 "columns or give the voxel size of its voxels")
            sizes[names == name] = voxel_size if voxel_size is not None else info.voxel_size[::-1]  # type: ignore[union-attr]
        xyz = raw[["x", "y", "z"]].to_numpy(np.float64) * sizes
    else:
        raise InputError(f"particle table '{path}' has no positions: add x_angstrom, y_angstrom, z_angstrom "
                         f"(or x, y, z in voxels) columns (found {found})")
    return particle_table(
        names, classes, xyz, raw["score"].to_numpy(np.float64) if "score" in raw.columns else None,
        class_index=raw["class_index"].to_numpy(np.int64) if "class_index" in raw.columns else None,
        angles=euler_angles(raw[MATRIX].to_numpy(np.float64)) if set(MATRIX) <= set(raw.columns) else None)


def csv_table(frame: pd.DataFrame, tomograms: Mapping[str, TomogramInfo]) -> pd.DataFrame:
    """A particle table in the CSV's columns; voxel columns only when every tomogram's voxel size is known."""
    out = pd.DataFrame({"tomogram": frame["tomogram"], "class_name": frame["class"]})
    if "class_index" in frame.columns:
        out["class_index"] = frame["class_index"]
    names = frame["tomogram"].to_numpy(dtype=object)
    if all(name in tomograms for name in np.unique(names)):
        sizes = np.array([tomograms[n].voxel_size[::-1] for n in names]).reshape(-1, 3)
        out[["x", "y", "z"]] = frame[["x", "y", "z"]].to_numpy(np.float64) / sizes
    out[ANGSTROM] = frame[["x", "y", "z"]].to_numpy(np.float64)
    out["score"] = frame["score"]
    if set(ANGLES) <= set(frame.columns):
        out[MATRIX] = rotation_matrices(frame[list(ANGLES)].to_numpy()).reshape(-1, 9)
    return out


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write :func:`csv_table` output."""
    table.to_csv(path, index=False, float_format="%.4f")
