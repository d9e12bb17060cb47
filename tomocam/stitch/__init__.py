"""Stitching per-tile maps into one volume: smooth window weights, weighted sums, division by summed weights."""

from tomocam.stitch.blend import axis_operator, blend, stitch_region, stitch_samples
from tomocam.stitch.labels import label_region
from tomocam.stitch.window import WINDOWS, axis_window

__all__ = ["WINDOWS", "axis_operator", "axis_window", "blend", "label_region", "stitch_region", "stitch_samples"]
