"""Particle pick tables: STAR (RELION/Warp column names, via ``starfile``) and CSV, and reading truth tables.

Coordinates: voxel positions on the tomogram's own grid (the centre of the first voxel is 0), and the same
positions in angstrom (voxel x voxel size, the store's OME-Zarr space). The CSV uses the column names of the
particle table that ``tomocam simulate tomogram`` writes (``class_name, x, y, z, x_angstrom, ...``), so a
simulated ground truth and a pick list read the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from tomocam.errors import InputError, OutputError

#: CSV column -> STAR column. rlnCoordinateX/Y/Z (voxels), rlnClassNumber and rlnAutopickFigureOfMerit are
#: RELION's own labels; the angstrom positions and the class name have no RELION label and are prefixed.
STAR_COLUMNS = {
    "x": "rlnCoordinateX",
    "y": "rlnCoordinateY",
    "z": "rlnCoordinateZ",
    "x_angstrom": "tomocamCoordinateXAngst",
    "y_angstrom": "tomocamCoordinateYAngst",
    "z_angstrom": "tomocamCoordinateZAngst",
    "class_index": "rlnClassNumber",
    "class_name": "tomocamClassName",
    "score": "rlnAutopickFigureOfMerit",
}


def picks_frame(
    coords_zyx: np.ndarray,
    scores: np.ndarray,
    class_names: list[str],
    class_index: np.ndarray,
    voxel_size: tuple[float, float, float],
) -> pd.DataFrame:
    """One row per pick: class, position in voxels and angstrom, score.

    ``coords_zyx``: `(n, 3)` voxel positions (floats allowed), ``scores`` `(n,)`, ``class_names`` `(n,)`,
    ``class_index`` `(n,)` 0-based model class, ``voxel_size`` `(z, y, x)` angstrom. The STAR file writes
    ``class_index + 1`` as rlnClassNumber (RELION counts classes from 1).
    """
    coords = np.asarray(coords_zyx, dtype=np.float64).reshape(-1, 3)
    vz, vy, vx = voxel_size
    return pd.DataFrame(
        {
            "class_name": list(class_names),
            "class_index": np.asarray(class_index, dtype=np.int64),
            "x": coords[:, 2],
            "y": coords[:, 1],
            "z": coords[:, 0],
            "x_angstrom": coords[:, 2] * vx,
            "y_angstrom": coords[:, 1] * vy,
            "z_angstrom": coords[:, 0] * vz,
            "score": np.asarray(scores, dtype=np.float64),
        }
    )


def _replace_atomically(path: Path, write, overwrite: bool) -> Path:
    """Run ``write(tmp_path)`` then rename to ``path``; no partial file is left under the final name."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists already; pass --overwrite to replace it")
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(partial)
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
    return path


def write_star(frame: pd.DataFrame, path: Path, *, overwrite: bool = False) -> Path:
    """Write a :func:`picks_frame` table as a STAR file with one ``particles`` data block."""
    import starfile

    star = frame.rename(columns=STAR_COLUMNS)
    star["rlnClassNumber"] = star["rlnClassNumber"] + 1
    return _replace_atomically(path, lambda p: starfile.write({"particles": star}, p), overwrite)


def write_csv(frame: pd.DataFrame, path: Path, *, overwrite: bool = False) -> Path:
    """Write a :func:`picks_frame` table as CSV (the simulator's column names)."""
    return _replace_atomically(path, lambda p: frame.to_csv(p, index=False, float_format="%.4f"), overwrite)


def read_particles(path: Path) -> pd.DataFrame:
    """Read a particle table (CSV or STAR) as columns ``class_name, x, y, z`` (voxels).

    Accepts the simulator's particle CSV, the pick CSV and STAR files written here, and STAR files with
    rlnCoordinateX/Y/Z plus a class name column. Raises :class:`InputError` when the columns are missing.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"particle table '{path}' does not exist or is not a file")
    try:
        if path.suffix.lower() == ".star":
            import starfile

            data = starfile.read(path, always_dict=True)
            frame = next(iter(data.values())).rename(columns={v: k for k, v in STAR_COLUMNS.items()})
        else:
            frame = pd.read_csv(path)
    except (ValueError, OSError, StopIteration, pd.errors.ParserError) as err:
        raise InputError(f"particle table '{path}' cannot be read: {err}") from None
    need = ["class_name", "x", "y", "z"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise InputError(
            f"particle table '{path}' lacks columns {missing}: expected {need} (CSV) or "
            "rlnCoordinateX/Y/Z and tomocamClassName (STAR); found " + ", ".join(map(str, frame.columns))
        )
    out = frame[need].copy()
    out["class_name"] = out["class_name"].astype(str)
    return out
