"""Cutting tiles out of a volume: read a block's voxels in one slab, then take tiles as views of it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomocam.tile.grid import Block, TileGrid


def slab_bounds(grid: TileGrid, block: Block) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Voxel box ``[lo, hi)`` covering every tile of ``block``."""
    lo = tuple(int(s[a]) for s, a in zip(grid.starts, block.lo))
    hi = tuple(int(s[b - 1]) + t for s, b, t in zip(grid.starts, block.hi, grid.tile))
    return lo, hi


def read_slab(volume: np.ndarray, grid: TileGrid, block: Block) -> tuple[np.ndarray, tuple[int, ...]]:
    """Read the voxels of ``block`` from a (lazy) ``volume`` in one go, as float32; returns ``(slab, origin)``."""
    lo, hi = slab_bounds(grid, block)
    slab = np.asarray(volume[tuple(slice(a, b) for a, b in zip(lo, hi))], dtype=np.float32)
    return slab, lo


def cut_tiles(
    slab: np.ndarray, origin: tuple[int, ...], grid: TileGrid, indices: Sequence[tuple[int, ...]]
) -> np.ndarray:
    """The tiles at grid ``indices`` from a ``slab`` read at ``origin``: ``(n, *tile)``, a new array."""
    tiles = np.empty((len(indices), *grid.tile), dtype=slab.dtype)
    for n, index in enumerate(indices):
        start = [s - o for s, o in zip(grid.tile_start(index), origin)]
        tiles[n] = slab[tuple(slice(a, a + t) for a, t in zip(start, grid.tile))]
    return tiles
