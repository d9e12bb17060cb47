"""Phase 2: stitch the per-tile maps into the level-0 heatmaps, one Dask task per group of output chunks.

A task reads the feature-resolution maps of every tile covering its group once (they are small), stitches the
group as one region (:func:`tomocam.stitch.stitch_region`) and writes it. Tasks own whole chunks of all
classes, so no two tasks write the same chunk; a chunk's value depends only on the tiles covering it.
"""

from __future__ import annotations

import numpy as np
import zarr

from tomocam.pipeline.plan import Plan
from tomocam.stitch import stitch_region
from tomocam.write.store import METHOD_GROUPS

def create_heatmap_arrays(root: zarr.Group, plan: Plan) -> None:
    """Create level 0 of each method's heatmap image: ``(k, z, y, x)`` float32, chunks ``(1, c, c, c)``."""
    k = len(plan.class_indices)
    for method in plan.methods:
        group = root.create_group(METHOD_GROUPS[method])
        group.create_array(
            "0", shape=(k, *plan.tomogram.shape), chunks=(1,) + (plan.chunk,) * len(plan.tomogram.shape),
            dtype="float32", fill_value=0.0,
        )


def stitch_chunks(plan: Plan, chunks: list[tuple[int, ...]]) -> int:
    """Phase-2 task: stitch and write the output ``chunks`` (a box of indices on the chunk grid) of every method.

    The box is stitched as one region from the feature-resolution maps of the tiles covering it, and written
    chunk-aligned.
    """
    root = zarr.open_group(plan.store, mode="r+")
    boxes = [plan.chunk_box(c) for c in chunks]
    nd = len(boxes[0][0])
    lo = tuple(min(b[0][d] for b in boxes) for d in range(nd))
    hi = tuple(max(b[1][d] for b in boxes) for d in range(nd))
    ranges = plan.grid.covering(lo, hi)
    starts = [plan.grid.starts[d][r] for d, r in enumerate(ranges)]
    shape = tuple(b - a for a, b in zip(lo, hi))
    for method in plan.methods:
        maps = np.asarray(root["tiles"][method][ranges])  # (a, b, c, k, *feat)
        heat = root[METHOD_GROUPS[method]]["0"]
        heat[(slice(None), *(slice(a, b) for a, b in zip(lo, hi)))] = stitch_region(
            lo, shape, starts, maps, plan.grid.tile, plan.window
        )
    return len(chunks)


def group_edge(plan: Plan, budget: int = 384 * 2**20) -> int:
    """Output chunks per axis in one phase-2 task: as many as fit ``budget`` bytes of float32 sums (at most 4)."""
    k = len(plan.class_indices)
    edge = 4
    while edge > 1 and 4 * (k + 1) * (edge * plan.chunk) ** len(plan.tomogram.shape) > budget:
        edge -= 1
    return edge
