"""Export store volumes (per-class heatmaps, the label image) to MRC files for IMOD and ChimeraX.

Volumes are copied block by block into a memory-mapped MRC, so a whole tomogram never sits in RAM; header
statistics are accumulated on the way. Each file is written under a ``.partial`` name and renamed only when
complete, so an interrupted export never leaves a file that looks finished. The voxel size and origin (in
angstrom, MRC x,y,z order in the header) place the map exactly over the input tomogram.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import mrcfile
import numpy as np

from tomocam.errors import InputError, OutputError
from tomocam.picking.peaks import ArrayLike, blocks
from tomocam.store import ExplainStore
from tomocam.store.select import ChannelView, select_classes, select_methods
from tomocam.store.space import VoxelSpace, level_space

#: MRC modes for the dtypes tomocam exports: float32 heatmaps, uint16 labels.
MRC_MODES = {np.dtype(np.float32): 2, np.dtype(np.uint16): 6}

#: Store dtypes written as a wider MRC mode: float16 heatmaps as float32, uint8 labels as uint16.
MRC_WIDER: dict[np.dtype, np.dtype] = {
    np.dtype(np.float16): np.dtype(np.float32), np.dtype(np.uint8): np.dtype(np.uint16),
}

#: The ``level`` that exports the heatmaps on the tomogram's grid (computed from the per-tile maps).
FULL = "full"


def write_mrc(
    volume: ArrayLike,
    path: Path,
    grid: VoxelSpace,
    *,
    block: Sequence[int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Copy a `(z, y, x)` volume (numpy, zarr or any sliceable array) to an MRC file at ``path``.

    The dtype must be float32 or uint16 (MRC modes 2 and 6; float16 and uint8 are widened). ``block`` sets how much
    is read at a time (default: the array's own chunks, else 64^3). Raises :class:`OutputError` if ``path`` exists
    and ``overwrite`` is false or it cannot be written.
    """
    path = Path(path)
    shape = tuple(int(s) for s in volume.shape)
    dtype = np.dtype(getattr(volume, "dtype", np.float32))
    dtype = MRC_WIDER.get(dtype, dtype)
    if len(shape) != 3:
        raise ValueError(f"MRC export needs a (z, y, x) volume, found shape {shape}")
    if dtype not in MRC_MODES:
        raise ValueError(f"MRC export supports float32 and uint16 volumes, found {dtype}")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists already; pass --overwrite to replace it")
    if block is None:
        block = tuple(getattr(volume, "chunks", None) or (64, 64, 64))
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with mrcfile.new_mmap(partial, shape=shape, mrc_mode=MRC_MODES[dtype], overwrite=True) as mrc:
            vmin, vmax, total, total_sq = np.inf, -np.inf, 0.0, 0.0
            for sl in blocks(shape, block):
                data = np.asarray(volume[sl], dtype=dtype)  # (bz, by, bx)
                mrc.data[sl] = data
                as64 = data.astype(np.float64)
                vmin, vmax = min(vmin, as64.min()), max(vmax, as64.max())
                total += as64.sum()
                total_sq += (as64**2).sum()
            n = float(np.prod(shape))
            mean = total / n
            mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = vmin, vmax, mean
            mrc.header.rms = np.sqrt(max(total_sq / n - mean**2, 0.0))
            vz, vy, vx = grid.voxel_size
            mrc.voxel_size = (vx, vy, vz)
            oz, oy, ox = grid.origin
            mrc.header.origin = (ox, oy, oz)
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write MRC file {path}: {err.strerror or err}") from err
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def input_origin(store: ExplainStore) -> tuple[float, float, float]:
    """The MRC header origin `(z, y, x)` angstrom of the store's input tomogram; zeros if it is gone."""
    path = Path(store.input_path)
    if not path.is_file():
        return (0.0, 0.0, 0.0)
    with mrcfile.open(path, header_only=True, permissive=True) as mrc:
        o = mrc.header.origin
        return (float(o.z), float(o.y), float(o.x))


def export_store(
    store: ExplainStore,
    out_dir: Path,
    *,
    methods: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    level: int | str = 0,
    labels: bool = True,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``<out_dir>/<stem>_<method>_<class>_<level>.mrc`` for each method and class (default: all), and
    ``<stem>_labels_<level>.mrc``; ``<level>`` is ``level<N>`` for stored pyramid level ``N`` or ``full``.

    ``level`` :data:`FULL` computes the heatmaps on the tomogram's grid from the per-tile maps, block by block
    (:meth:`ExplainStore.full_grid`), only for the classes and methods asked; the labels are then level 0.
    ``stem`` is the store's file name without ``.zarr``. Each map keeps the level's voxel size and is placed
    at the input tomogram's origin plus the level's offset, so it overlays the tomogram in IMOD and ChimeraX.
    All target names are checked before anything is written. Returns the paths written.
    """
    out_dir = Path(out_dir)
    stem = Path(store.path).name.removesuffix(".zarr")
    base = np.asarray(input_origin(store))
    full = level == FULL
    if not full and not isinstance(level, int):
        raise InputError(f"export level must be a pyramid level number or '{FULL}'; got {level!r}")
    number = level if isinstance(level, int) else 0  # the level read (labels: 0 for the full grid)
    tag = FULL if full else f"level{level}"
    jobs: list[tuple[ArrayLike, Path, VoxelSpace]] = []
    for method in select_methods(store, methods):
        if full:
            array, grid = store.full_grid(method), VoxelSpace(store.voxel_size)  # (c, z, y, x) lazy
        else:
            array, grid = store.heatmap(method, number), level_space(store, method, number)  # (c, *samples)
        placed = VoxelSpace(grid.voxel_size, tuple(base + np.asarray(grid.origin)))
        for name in select_classes(store, classes):
            c = store.classes.index(name)
            jobs.append((ChannelView(array, c), out_dir / f"{stem}_{method}_{_safe(name)}_{tag}.mrc", placed))
    if labels:
        grid = level_space(store, "labels/segmentation", number)
        placed = VoxelSpace(grid.voxel_size, tuple(base + np.asarray(grid.origin)))
        jobs.append((store.labels(number), out_dir / f"{stem}_labels_{tag}.mrc", placed))
    existing = [str(p) for _, p, _ in jobs if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"export target exists already: {', '.join(existing)}; pass --overwrite to replace")
    return [write_mrc(volume, path, grid, overwrite=overwrite) for volume, path, grid in jobs]


def _safe(name: str) -> str:
    """A class name as a file-name part: anything but letters, digits, '-', '_' and '.' becomes '_'."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)

