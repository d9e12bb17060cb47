"""A block's voxels: read in one slab, and where its tiles start in it (cutting: :mod:`tomocam.models.inputs`)."""

from __future__ import annotations

import math
import mmap
from collections.abc import Sequence

import numpy as np

from tomocam.tile.grid import Block, TileGrid


def slab_bounds(grid: TileGrid, block: Block) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Voxel box ``[lo, hi)`` covering every tile of ``block``."""
    lo = tuple(int(s[a]) for s, a in zip(grid.starts, block.lo))
    hi = tuple(int(s[b - 1]) + t for s, b, t in zip(grid.starts, block.hi, grid.tile))
    return lo, hi


#: Bytes of a memory-mapped tomogram that :func:`read_slab` maps at a time. Copying a box out of a map touches
#: every page its rows lie on, and those pages count in the process's memory until released: a block's slab of
#: 180^3 voxels from a 640-voxel-wide tomogram mapped 248 MB (its 23 MB of voxels lie on rows of 2560 bytes),
#: read in steps of about this many bytes and released after each, 22 MB.
READ_STEP_BYTES = 16 << 20


def read_slab(volume: np.ndarray, grid: TileGrid, block: Block) -> tuple[np.ndarray, tuple[int, ...]]:
    """Read the voxels of ``block`` from a (lazy) ``volume`` as float32; returns ``(slab, origin)``.

    The slab is copied a few planes (first axis) at a time, and a memory-mapped ``volume`` gives back its pages
    after each step (:func:`release_pages`), so a task maps at most about :data:`READ_STEP_BYTES` of the file.
    """
    lo, hi = slab_bounds(grid, block)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    slab = np.empty(tuple(b - a for a, b in zip(lo, hi)), np.float32)  # writable, in RAM
    mapped = volume.itemsize * (hi[1] - lo[1]) * math.prod(volume.shape[2:])  # bytes spanned by one plane's rows
    step = max(1, READ_STEP_BYTES // max(1, mapped))
    for a in range(0, slab.shape[0], step):
        b = min(a + step, slab.shape[0])
        slab[a:b] = volume[(slice(lo[0] + a, lo[0] + b),) + box[1:]]
        release_pages(volume)
    return slab, lo


def release_pages(volume: np.ndarray) -> None:
    """Unmap this process's resident pages of the file mapping under ``volume``, if it is a memory map.

    Pages of a memory-mapped file that were read stay in the process's resident memory while the map is open (the
    tomogram's map is cached for the whole run), so a run's memory would grow with the tomogram. Unmapped, they
    stay in the OS page cache and are mapped again, from there, when read again; the map itself is not changed.
    """
    base: object = volume
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if base is not None and hasattr(mmap, "MADV_DONTNEED"):  # Linux and macOS
        base.madvise(mmap.MADV_DONTNEED)


def slab_starts(grid: TileGrid, block: Block, origin: Sequence[int]) -> np.ndarray:
    """Start voxels ``(n, nd)`` of the tiles of ``block`` (C order) inside its slab read at ``origin``."""
    starts = np.array([grid.tile_start(index) for index in block.indices()], dtype=np.int64)  # (n, nd)
    return starts - np.asarray(origin, dtype=np.int64)
