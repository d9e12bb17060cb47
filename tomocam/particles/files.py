"""Read and write particle tables in the field's formats, converting through angstrom.

:func:`read_particles` picks the format from the file's extension (``.star``: RELION 5 when it has centred
coordinates, else RELION 3 / Warp; ``.csv``: tomocam; ``.json``: copick picks; ``.ndjson``/``.jsonl``: data
portal) or, for any other extension, from its first characters. :func:`write_particles` writes one file atomically
(a temporary file renamed into place, so a partial table never appears under its final name).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from tomocam.errors import InputError, OutputError
from tomocam.particles import copick_json, portal_ndjson, star, tomocam_csv
from tomocam.particles.table import TomogramInfo, check_table

#: Format name -> file suffix.
FORMATS = {"relion5": ".star", "relion3": ".star", "csv": ".csv", "copick": ".json", "ndjson": ".ndjson"}


def read_particles(
    path: str | Path,
    *,
    tomograms: Mapping[str, TomogramInfo] | None = None,
    voxel_size: float | None = None,
    tomogram: str | None = None,
    class_name: str | None = None,
    classes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a particle table as :mod:`tomocam.particles.table`'s DataFrame (angstrom, tomocam's frame).

    ``tomograms``: name -> :class:`TomogramInfo`, needed by RELION 5 (centred coordinates need the shape) and by
    voxel coordinates whose table does not state a voxel size. ``voxel_size``: angstrom per voxel of a table's
    voxel coordinates when the table does not say (RELION 3, old CSV, ndjson). ``tomogram``: the tomogram wanted: a
    table that names none (old CSV, ndjson) is taken to be of it, and of a table that names its tomograms only its
    rows are read (refused when it has none). ``class_name``: the class of a table that names none
    (ndjson defaults to the file stem). ``classes``: the model's classes, which ``rlnClassNumber`` (1-based)
    indexes when a STAR file has no class-name column. A table that lacks what it needs is refused with an
    :class:`InputError` of one line naming the column or option to add.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"particle table '{path}' does not exist or is not a file")
    kind = detect_format(path)
    source = f"'{path}'"
    if kind == "star":
        blocks = star.read_blocks(path)
        if star.is_relion5(star.particle_block(blocks, path)):
            frame = star.read_relion5(path, blocks, tomograms=tomograms, tomogram=tomogram, class_name=class_name,
                                      classes=classes)
        else:
            frame = star.read_relion3(path, blocks, tomograms=tomograms, voxel_size=voxel_size, tomogram=tomogram,
                                      class_name=class_name, classes=classes)
    elif kind == "csv":
        frame = tomocam_csv.read_csv(path, tomograms=tomograms, voxel_size=voxel_size, tomogram=tomogram,
                                     class_name=class_name)
    elif kind == "copick":
        frame = copick_json.read_copick(path, tomogram=tomogram, class_name=class_name)
    else:
        frame = portal_ndjson.read_ndjson(path, tomograms=tomograms, voxel_size=voxel_size, tomogram=tomogram,
                                          class_name=class_name)
    return check_table(frame, source)


def detect_format(path: Path) -> str:
    """``star``, ``csv``, ``copick`` or ``ndjson``: by suffix, else by the file's first non-blank characters."""
    suffix = path.suffix.lower()
    by_suffix = {".star": "star", ".csv": "csv", ".json": "copick", ".ndjson": "ndjson", ".jsonl": "ndjson"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(4096).lstrip()
    if head.startswith(("data_", "#")):
        return "star"
    if head.startswith("{"):
        first = head.split("\n", 1)[0]
        return "ndjson" if first.rstrip().endswith("}") and '"location"' in first else "copick"
    return "csv"


def write_particles(
    frame: pd.DataFrame,
    path: str | Path,
    format: str,
    *,
    tomograms: Mapping[str, TomogramInfo] | None = None,
    overwrite: bool = False,
    user_id: str = "tomocam",
    session_id: str = "0",
) -> Path:
    """Write a particle table to ``path`` in ``format`` (a key of :data:`FORMATS`); returns ``path``.

    ``tomograms``: name -> :class:`TomogramInfo` of the table's tomograms, required by ``relion5`` (centred
    coordinates), ``relion3`` and ``ndjson`` (voxels); ``csv`` adds voxel columns when it is given. ``copick``
    and ``ndjson`` hold one tomogram and one class per file. ``user_id`` and ``session_id`` go into copick files
    (session ``0`` marks picks made by a tool). An existing file is refused unless ``overwrite``.
    """
    if format not in FORMATS:
        raise InputError(f"unknown particle table format '{format}': choose one of {', '.join(FORMATS)}")
    frame = check_table(frame, "to write")
    infos: Mapping[str, TomogramInfo] = tomograms or {}
    write: Callable[[Path], None]
    if format in ("relion5", "relion3"):
        table = star.relion5_table(frame, infos) if format == "relion5" else star.relion3_table(frame, infos)
        write = lambda p: star.write_star(table, p)  # noqa: E731
    elif format == "csv":
        rows = tomocam_csv.csv_table(frame, infos)
        write = lambda p: tomocam_csv.write_csv(rows, p)  # noqa: E731
    elif format == "copick":
        document = copick_json.copick_document(frame, infos, user_id=user_id, session_id=session_id)
        write = lambda p: copick_json.write_json(document, p)  # noqa: E731
    else:
        lines = portal_ndjson.ndjson_lines(frame, infos)
        write = lambda p: portal_ndjson.write_ndjson(lines, p)  # noqa: E731
    return replace_atomically(Path(path), write, overwrite)


def replace_atomically(path: Path, write: Callable[[Path], None], overwrite: bool) -> Path:
    """Run ``write(temporary)`` beside ``path``, then rename it to ``path``; no partial file is left under the final
    name, and an existing ``path`` is refused unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists already; pass --overwrite to replace it")
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(partial)
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
    finally:
        partial.unlink(missing_ok=True)
    return path
