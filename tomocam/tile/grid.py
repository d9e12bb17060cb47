"""The global tile grid and its blocks, computed from shapes alone (no voxels), so a dry run can print them.

Tiles start at 0 and step by a fixed ``stride``; the last tile on each axis is clamped to the edge, so every
voxel is covered and no tile leaves the volume. One code path for any number of spatial axes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from tomocam.errors import InputError


def axis_starts(length: int, tile: int, stride: int) -> np.ndarray:
    """Tile start positions along one axis: ``0, stride, 2*stride, ...`` and a last tile ending at ``length``."""
    if tile > length:
        raise InputError(f"the tomogram is smaller than one tile: {length} voxels along an axis, tile is {tile}")
    if stride < 1 or stride > tile:
        raise InputError(f"stride {stride} must be between 1 and the tile size {tile}")
    n = math.ceil((length - tile) / stride) + 1
    starts = np.arange(n, dtype=np.int64) * stride
    starts[-1] = length - tile
    return starts


@dataclass(frozen=True)
class Block:
    """A box of tiles on the grid, ``index`` in the block grid, ``lo``/``hi`` grid index bounds per axis."""

    index: tuple[int, ...]
    lo: tuple[int, ...]
    hi: tuple[int, ...]

    @property
    def grid_slices(self) -> tuple[slice, ...]:
        """Slices selecting this block's tiles in a grid-shaped array."""
        return tuple(slice(a, b) for a, b in zip(self.lo, self.hi))

    @property
    def shape(self) -> tuple[int, ...]:
        """Tiles per axis in this block."""
        return tuple(b - a for a, b in zip(self.lo, self.hi))

    @property
    def n_tiles(self) -> int:
        """Number of tiles in this block."""
        return int(np.prod(self.shape))

    def indices(self) -> list[tuple[int, ...]]:
        """Grid indices of the block's tiles, in C order (the order of a ``(*shape, ...)`` reshape)."""
        return list(itertools.product(*(range(a, b) for a, b in zip(self.lo, self.hi))))


@dataclass(frozen=True)
class TileGrid:
    """Tiles of size ``tile`` stepping by ``stride`` over a volume of ``shape`` (all per spatial axis)."""

    shape: tuple[int, ...]
    tile: tuple[int, ...]
    stride: tuple[int, ...]

    @classmethod
    def build(
        cls, shape: tuple[int, ...], tile: int | tuple[int, ...], stride: int | tuple[int, ...] | None = None
    ) -> TileGrid:
        """A grid with isotropic or per-axis ``tile`` and ``stride`` (default: half a tile, at least 1)."""
        nd = len(shape)
        tile_t = (tile,) * nd if isinstance(tile, int) else tuple(tile)
        if stride is None:
            stride_t = tuple(max(1, t // 2) for t in tile_t)
        else:
            stride_t = (stride,) * nd if isinstance(stride, int) else tuple(stride)
        grid = cls(tuple(int(s) for s in shape), tuple(int(t) for t in tile_t), tuple(int(s) for s in stride_t))
        _ = grid.starts  # computed now, so that an impossible grid fails here
        return grid

    @cached_property
    def starts(self) -> tuple[np.ndarray, ...]:
        """Per axis, the start voxel of each tile index."""
        return tuple(axis_starts(n, t, s) for n, t, s in zip(self.shape, self.tile, self.stride))

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Number of tiles per axis."""
        return tuple(len(s) for s in self.starts)

    @property
    def n_tiles(self) -> int:
        """Number of tiles in the grid."""
        return int(np.prod(self.grid_shape))

    def tile_start(self, index: tuple[int, ...]) -> tuple[int, ...]:
        """Start voxel of the tile at grid ``index``."""
        return tuple(int(s[i]) for s, i in zip(self.starts, index))

    def covering(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> tuple[slice, ...]:
        """Grid index ranges of the tiles that overlap the voxel box ``[lo, hi)``."""
        out = []
        for starts, t, a, b in zip(self.starts, self.tile, lo, hi):
            first = int(np.searchsorted(starts + t, a, side="right"))  # first tile ending after a
            last = int(np.searchsorted(starts, b, side="left"))  # tiles starting before b
            out.append(slice(first, last))
        return tuple(out)

    def describe(self) -> str:
        """A short human-readable description (for a dry run and logs)."""
        dims = " x ".join(str(n) for n in self.grid_shape)
        return (
            f"volume {tuple(self.shape)}, tile {tuple(self.tile)}, stride {tuple(self.stride)}: "
            f"{dims} = {self.n_tiles} tiles"
        )


def make_blocks(grid: TileGrid, block: int | tuple[int, ...]) -> list[Block]:
    """Cut the tile grid into boxes of at most ``block`` tiles per axis (the phase-1 tasks), in C order."""
    nd = len(grid.grid_shape)
    block_t = (block,) * nd if isinstance(block, int) else tuple(block)
    counts = [math.ceil(g / b) for g, b in zip(grid.grid_shape, block_t)]
    blocks = []
    for index in itertools.product(*(range(c) for c in counts)):
        lo = tuple(i * b for i, b in zip(index, block_t))
        hi = tuple(min(l + b, g) for l, b, g in zip(lo, block_t, grid.grid_shape))
        blocks.append(Block(index=tuple(index), lo=lo, hi=hi))
    return blocks
