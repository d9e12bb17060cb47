"""Which tomograms a dataset is: the inputs of ``tomocam explain`` resolved to a sorted list of tomogram files.

An input is a tomogram (an MRC file or an OME-Zarr image), a folder (its ``*.mrc`` and ``*.rec`` files and its
``*.zarr`` OME-Zarr images, not its other subfolders), a copick project's ``copick_config.json`` (the tomogram of
the chosen type and voxel spacing of every run), a glob pattern
quoted so that the shell leaves it alone (``'data/TS_*/*_rec.mrc'``, ``**`` for any depth), or a list file
(``.txt``, ``.list`` or ``.lst``: one path a line, blank lines and lines starting with ``#`` skipped, relative
paths taken from the current folder as a shell would). From folders and patterns, files whose name matches an
``exclude`` pattern are left out (by default ``*_mask.mrc``, the masks that ``tomocam simulate`` and many
pipelines write beside their tomograms); tomograms named explicitly or in a list are always kept.

These are the rules of ``scripts/slurm/explain-array.sbatch`` too, so a dataset means the same on a workstation
and in a SLURM array.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Sequence
from pathlib import Path

from tomocam.errors import InputError
from tomocam.read import CopickProject, locate_tomogram
from tomocam.read.omezarr import is_zarr

#: Suffixes of the tomogram files taken from a folder.
TOMOGRAM_SUFFIXES = (".mrc", ".rec")

#: Suffixes of list files (one tomogram path a line).
LIST_SUFFIXES = (".txt", ".list", ".lst")

#: File-name patterns left out of folders and glob patterns by default.
DEFAULT_EXCLUDE = ("*_mask.mrc",)

_GLOB_CHARS = set("*?[")


def is_pattern(text: str) -> bool:
    """True when ``text`` is a glob pattern rather than a path: it has ``*``, ``?`` or ``[`` and no such file."""
    return bool(_GLOB_CHARS & set(text)) and not os.path.lexists(text)


def is_list_file(path: Path) -> bool:
    """True when ``path`` is a list file (by its suffix) that exists."""
    return path.suffix.lower() in LIST_SUFFIXES and path.is_file()


def is_copick_config(path: Path) -> bool:
    """True when ``path`` is a JSON file: a copick project's config (the reader checks it is one)."""
    return path.suffix.lower() == ".json" and path.is_file()


def is_dataset(inputs: Sequence[str], run: str | None = None) -> bool:
    """Whether ``inputs`` make a dataset (output: a folder of stores) rather than one tomogram (output: one store,
    ``tomocam explain TOMOGRAM``): several inputs, or one folder that is not an OME-Zarr image, glob pattern, list
    file, or copick project without a ``run`` chosen."""
    if len(inputs) != 1:
        return True
    (only,) = inputs
    path = Path(only)
    if is_copick_config(path):
        return run is None
    return is_pattern(only) or (path.is_dir() and not is_zarr(path)) or is_list_file(path)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() == ".zarr" and path.is_dir() and is_zarr(path)


def _copick_runs(config: Path, tomo_type: str | None, voxel_spacing: float | None) -> list[str]:
    """The tomogram of type ``tomo_type`` at ``voxel_spacing`` of every run of a copick project; a run without one
    keeps the path where it would be, so the run records it as a bad input and goes on."""
    if tomo_type is None or voxel_spacing is None:
        raise InputError(f"the runs of copick project '{config}' need --tomo-type and --voxel-spacing to choose "
                         "their tomogram")
    project = CopickProject.open(config)
    runs = project.runs()
    if not runs:
        raise InputError(f"copick project '{config}' has no run")
    paths = []
    for run in runs:
        try:
            paths.append(str(project.tomogram(run, tomo_type, voxel_spacing)))
        except InputError:
            relative = Path("ExperimentRuns", run, f"VoxelSpacing{voxel_spacing:.3f}", f"{tomo_type}.zarr")
            paths.append(str(project.roots[0] / relative))
    return paths


def _excluded(path: str, exclude: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(os.path.basename(path), p) for p in exclude)


def _folder(folder: Path, exclude: Sequence[str]) -> list[str]:
    files = [p for p in folder.iterdir() if (p.suffix.lower() in TOMOGRAM_SUFFIXES and p.is_file()) or _is_image(p)]
    return sorted(str(p) for p in files if not _excluded(p.name, exclude))


def _pattern(pattern: str, exclude: Sequence[str]) -> list[str]:
    files = glob.glob(os.path.expanduser(pattern), recursive=True)
    return sorted(f for f in files if (os.path.isfile(f) or _is_image(Path(f))) and not _excluded(f, exclude))


def _level(path: str, level: int) -> str:
    """``path`` itself, or for an OME-Zarr image at ``level`` > 0 the path of that level's array."""
    return locate_tomogram(path, level=level) if level and _is_image(Path(path)) else path


def read_list(path: Path) -> list[str]:
    """The paths a list file names, one a line (blank lines and ``#`` comments skipped), as written."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"list file '{path}' cannot be read: {err}") from None
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def resolve_dataset(
    inputs: Sequence[str],
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    *,
    level: int = 0,
    tomo_type: str | None = None,
    voxel_spacing: float | None = None,
) -> list[str]:
    """The tomograms of ``inputs``: absolute paths, in the order of the inputs (each folder and pattern sorted),
    each file once. OME-Zarr images are read at pyramid ``level`` (the path of that level's array); a copick
    config gives the tomogram ``tomo_type`` at ``voxel_spacing`` of each of its runs.

    A path that does not exist is kept (the run records it as a bad input with its reason and goes on), but a
    folder or pattern with no tomogram, or no tomogram at all, is an :class:`InputError`: a typo there would
    otherwise make an empty dataset that looks successful.
    """
    found: list[str] = []
    for given in inputs:
        path = Path(given).expanduser()
        if is_pattern(given):
            files = _pattern(given, exclude)
            if not files:
                raise InputError(f"pattern '{given}' matches no tomogram file (excluded: {', '.join(exclude) or '-'})")
        elif is_copick_config(path):
            files = _copick_runs(path, tomo_type, voxel_spacing)
        elif path.is_dir() and not is_zarr(path):
            files = _folder(path, exclude)
            if not files:
                raise InputError(
                    f"folder '{given}' holds no {' or '.join('*' + s for s in TOMOGRAM_SUFFIXES)} file "
                    f"(excluded: {', '.join(exclude) or '-'})"
                )
        elif is_list_file(path):
            files = read_list(path)
            if not files:
                raise InputError(f"list file '{given}' names no tomogram")
        else:
            files = [given]
        found.extend(_level(str(Path(f).expanduser().absolute()), level) for f in files)
    unique = list(dict.fromkeys(os.path.normpath(f) for f in found))
    if not unique:
        raise InputError("no tomogram given")
    return unique
