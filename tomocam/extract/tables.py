"""Reading the particle tables of an extraction through the particle-table room (:mod:`tomocam.particles`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from tomocam.errors import InputError
from tomocam.read import Tomogram


def read_table(path: Path, tomograms: Mapping[str, Tomogram], owner: str | None) -> pd.DataFrame:
    """The particles of ``path`` as the particle-table room reads them (``tomogram, class, x, y, z`` angstrom).

    Every row is read, whichever tomogram it names (a row of a tomogram not given is then refused by
    :func:`tomocam.extract.selection.select_particles`); only a table that names no tomogram is read as
    ``owner``'s, when there is one.
    """
    from tomocam.particles import TomogramInfo, read_particles

    infos = {name: TomogramInfo(name, t.shape, t.voxel_size) for name, t in tomograms.items()}
    try:
        return read_particles(path, tomograms=infos)
    except InputError:
        if owner is None:
            raise
        return read_particles(path, tomograms=infos, tomogram=owner)
