"""Phase 2: stitch the per-tile maps into the heatmaps, one Dask task per group of output chunks.

A task reads the feature-resolution maps of every tile covering its group once (they are small), stitches the
group as one region (:func:`tomocam.stitch.stitch_region`) and, while the region is in memory, also writes its
2x-downsampled pyramid level 1 and its label image. Level-1 chunks are half the size of level-0 chunks, so each
task owns whole chunks of every array it writes: no two tasks write the same chunk, and a chunk's value depends
only on the tiles covering it.
"""

from __future__ import annotations

import numpy as np
import zarr

from tomocam.classes import background_indices
from tomocam.pipeline.plan import Plan
from tomocam.stitch import stitch_region
from tomocam.write.pyramid import HEATMAP_CODEC, downsample_mean, label_block, n_levels_for


def label_method(plan: Plan) -> str:
    """The method whose heatmaps make the label image: Respond-CAM when computed."""
    return "respond" if "respond" in plan.methods else plan.methods[0]


def create_output_arrays(root: zarr.Group, plan: Plan) -> None:
    """Create what phase 2 writes: heatmap levels 0 and 1 ``(k, z, y, x)`` float32 and label level 0 ``(z, y, x)``."""
    k = len(plan.class_indices)
    shape = plan.tomogram.shape
    c = plan.chunk
    for method in plan.methods:
        group = root.create_group(method)
        group.create_array("0", shape=(k, *shape), chunks=(1, c, c, c), dtype="float32", fill_value=0.0,
                           compressors=HEATMAP_CODEC)
        if n_levels_for(shape, c) > 1:
            group.create_array("1", shape=(k, *(n // 2 for n in shape)), chunks=(1, c // 2, c // 2, c // 2),
                               dtype="float32", fill_value=0.0, compressors=HEATMAP_CODEC)
    seg = root.create_group("labels").create_group("segmentation")
    seg.create_array("0", shape=shape, chunks=(c, c, c), dtype="uint16", fill_value=0)


def output_array_names(plan: Plan) -> list[str]:
    """Store paths of the arrays phase 2 writes (those :func:`create_output_arrays` makes)."""
    levels = ("0", "1") if n_levels_for(plan.tomogram.shape, plan.chunk) > 1 else ("0",)
    return [f"{m}/{n}" for m in plan.methods for n in levels] + ["labels/segmentation/0"]


def stitch_chunks(plan: Plan, chunks: list[tuple[int, ...]], threshold: float) -> int:
    """Phase-2 task: stitch and write the output ``chunks`` (a box of indices on the chunk grid).

    Writes, for every method, level 0 and level 1 of the heatmaps, and the label image (voxels whose largest
    class value of :func:`label_method` exceeds ``threshold``).
    """
    root = zarr.open_group(plan.store, mode="r+")
    boxes = [plan.chunk_box(c) for c in chunks]
    nd = len(boxes[0][0])
    lo = tuple(min(b[0][d] for b in boxes) for d in range(nd))
    hi = tuple(max(b[1][d] for b in boxes) for d in range(nd))
    ranges = plan.grid.covering(lo, hi)
    starts = [plan.grid.starts[d][r] for d, r in enumerate(ranges)]
    shape = tuple(b - a for a, b in zip(lo, hi))
    region = tuple(slice(a, b) for a, b in zip(lo, hi))
    half = tuple(slice(a // 2, b // 2) for a, b in zip(lo, hi))  # lo is a multiple of the (even) chunk size
    for method in plan.methods:
        maps = np.asarray(root["tiles"][method][ranges])  # (a, b, c, k, *feat)
        heat = stitch_region(lo, shape, starts, maps, plan.grid.tile, plan.window)  # (k, *shape)
        group = root[method]
        group["0"][(slice(None), *region)] = heat
        if "1" in group:
            group["1"][(slice(None), *half)] = downsample_mean(heat)
        if method == label_method(plan):
            ignore = background_indices(plan.class_names)
            root["labels/segmentation/0"][region] = label_block(heat, threshold, ignore)
    return len(chunks)


def group_edge(plan: Plan, budget: int = 384 * 2**20) -> int:
    """Output chunks per axis in one phase-2 task: as many as fit ``budget`` bytes of float32 maps (at most 4)."""
    k = len(plan.class_indices)
    edge = 4
    while edge > 1 and 4 * (k + 1) * (edge * plan.chunk) ** len(plan.tomogram.shape) > budget:
        edge -= 1
    return edge
