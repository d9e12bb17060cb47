"""Which reader a tomogram path needs: an MRC file, an OME-Zarr image (or one level of it), or a tomogram of a
copick project. The pipeline opens every tomogram with :func:`open_tomogram` and sees only a
:class:`~tomocam.read.tomogram.Tomogram`; :func:`locate_tomogram` turns a command line's choice (a copick
run, a pyramid level) into the one path that :func:`open_tomogram` reads.
"""

from __future__ import annotations

from pathlib import Path

from tomocam.errors import InputError
from tomocam.read.copick import CopickProject
from tomocam.read.mrc import open_mrc
from tomocam.read.omezarr import is_zarr, level_path, open_ome_zarr
from tomocam.read.tomogram import Tomogram


def open_tomogram(path: str | Path, voxel_size: float | None = None, *, level: int = 0) -> Tomogram:
    """Open the tomogram at ``path`` lazily and check it: an MRC file, an OME-Zarr image (pyramid ``level``,
    0 the finest) or one level's array inside an OME-Zarr image.

    ``voxel_size`` (angstrom, isotropic) overrides the file's. Raises :class:`InputError` (one line) for a
    missing path, a file of another kind, and every check of :func:`tomocam.read.mrc.open_mrc` and
    :func:`tomocam.read.omezarr.open_ome_zarr`.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"tomogram '{path}' does not exist")
    if path.is_dir():
        if not is_zarr(path):
            raise InputError(f"tomogram '{path}' is a folder but not a zarr store (an OME-Zarr image)")
        return open_ome_zarr(path, voxel_size, level=level)
    if level:
        raise InputError(f"--level selects a pyramid level of an OME-Zarr image; '{path}' is a file")
    if path.suffix.lower() == ".json":
        raise InputError(f"'{path}' looks like a copick project config; choose its tomogram with --run, --tomo-type "
                         f"and --voxel-spacing")
    return open_mrc(path, voxel_size)


def locate_tomogram(
    path: str | Path,
    *,
    level: int = 0,
    run: str | None = None,
    tomo_type: str | None = None,
    voxel_spacing: float | None = None,
) -> str:
    """The path :func:`open_tomogram` reads for a command line's input: ``path`` itself (MRC, OME-Zarr level 0),
    the array of pyramid ``level`` of an OME-Zarr image, or the tomogram ``tomo_type`` of ``run`` at
    ``voxel_spacing`` angstrom of the copick project whose config is ``path`` (then at ``level``).

    Raises :class:`InputError` for a copick choice without a copick config or with a part missing, and for
    what :class:`~tomocam.read.copick.CopickProject` and :func:`~tomocam.read.omezarr.level_path` refuse.
    """
    path = Path(path)
    chosen = {"--run": run, "--tomo-type": tomo_type, "--voxel-spacing": voxel_spacing}
    is_config = path.is_file() and path.suffix.lower() == ".json"
    if is_config or any(v is not None for v in chosen.values()):
        if not is_config:
            raise InputError(f"{', '.join(k for k, v in chosen.items() if v is not None)} choose a tomogram of a "
                             f"copick project: give its copick_config.json, not '{path}'")
        missing = [k for k, v in chosen.items() if v is None]
        if missing:
            raise InputError(f"a copick project needs {', '.join(missing)} to choose its tomogram")
        assert run is not None and tomo_type is not None and voxel_spacing is not None
        path = CopickProject.open(path).tomogram(run, tomo_type, voxel_spacing)
    if level:
        if not (path.is_dir() and is_zarr(path)):
            raise InputError(f"--level selects a pyramid level of an OME-Zarr image; '{path}' is not one")
        return level_path(path, level)
    return str(path)
