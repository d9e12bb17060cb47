"""The tile plan: a global tile grid from shapes alone, blocks of tiles for tasks, and cutting tiles."""

from tomocam.tile.cut import read_slab, release_pages, slab_starts
from tomocam.tile.grid import Block, TileGrid, axis_starts, make_blocks

__all__ = ["Block", "TileGrid", "axis_starts", "make_blocks", "read_slab", "release_pages", "slab_starts"]
