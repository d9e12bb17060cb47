"""Reading the particle tables of an extraction through the particle-table room (:mod:`tomocam.particles`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from tomocam.errors import InputError
from tomocam.read import Tomogram


def read_table(path: Path, tomograms: Mapping[str, Tomogram], owner: str | None) -> pd.DataFrame:
    """The particles of ``path`` as the particle-table room reads them (``tomogram, class, x, y, z`` angstrom);
    ``owner`` names the tomogram of a table that names none."""
    try:
        from tomocam.particles import TomogramInfo, read_particles
    except ImportError:  # TEMPORARY until the particle-table room is merged: tomocam CSV only
        return _read_tomocam_csv(path, owner)
    infos = {name: TomogramInfo(name=name, shape=tuple(t.shape), voxel_size=float(t.voxel_size[-1]))
             for name, t in tomograms.items()}
    return read_particles(path, tomograms=infos, tomogram=owner)


def _read_tomocam_csv(path: Path, owner: str | None) -> pd.DataFrame:
    frame = pd.read_csv(path)
    if "class" not in frame and "class_name" in frame:
        frame = frame.rename(columns={"class_name": "class"})
        frame[["x", "y", "z"]] = frame[["x_angstrom", "y_angstrom", "z_angstrom"]].to_numpy()
    if "tomogram" not in frame:
        if owner is None:
            raise InputError(f"particle table '{path}' names no tomogram: add a column 'tomogram'")
        frame["tomogram"] = owner
    return frame
