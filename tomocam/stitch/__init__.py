"""Stitching per-tile maps into one volume: smooth window weights, weighted sums, division by summed weights."""

from tomocam.stitch.blend import accumulate, finish, stitch_region, upsample_tiles
from tomocam.stitch.window import WINDOWS, tile_window

__all__ = ["WINDOWS", "accumulate", "finish", "stitch_region", "tile_window", "upsample_tiles"]
