"""A block's voxels: read in one slab, and where its tiles start in it (cutting: :mod:`tomocam.models.inputs`)."""

from __future__ import annotations

import mmap
from collections.abc import Sequence

import numpy as np

from tomocam.tile.grid import Block, TileGrid


def slab_bounds(grid: TileGrid, block: Block) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Voxel box ``[lo, hi)`` covering every tile of ``block``."""
    lo = tuple(int(s[a]) for s, a in zip(grid.starts, block.lo))
    hi = tuple(int(s[b - 1]) + t for s, b, t in zip(grid.starts, block.hi, grid.tile))
    return lo, hi


def read_slab(volume: np.ndarray, grid: TileGrid, block: Block) -> tuple[np.ndarray, tuple[int, ...]]:
    """Read the voxels of ``block`` from a (lazy) ``volume`` in one go, as float32; returns ``(slab, origin)``.

    A memory-mapped ``volume`` gives its pages back once they are copied (:func:`release_pages`).
    """
    lo, hi = slab_bounds(grid, block)
    slab = np.array(volume[tuple(slice(a, b) for a, b in zip(lo, hi))], dtype=np.float32)  # a copy: writable, in RAM
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
