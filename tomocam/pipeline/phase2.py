"""Phase 2: from the per-tile maps to every stored level of the heatmaps and labels, Dask tasks per level-0
heatmap chunk.

The stitching runs on the plan's device (on a GPU worker the matrix products cost next to nothing).
A chunk of level 0 (``chunk`` samples per axis, :class:`tomocam.store.layout.Sampling`) stands for a box of
voxels. Each task reads the feature-resolution maps of the tiles covering that box once (only those tiles) and
writes every pyramid level of its box from memory, so nothing reads level 0 back:

- :func:`stitch_heatmaps`, for each method: level 0, the field at the samples
  (:func:`tomocam.stitch.stitch_samples`), and the coarser levels as 2x means of it
  (:func:`tomocam.store.pyramid.heatmap_pyramid`). It needs only the phase-1 blocks covering the box, so the run
  starts it as soon as they are done.
- :func:`write_labels`: the labels of every voxel of the box (:func:`tomocam.stitch.label_region`, which never
  holds the full-grid field of all classes and skips the classes, and sub-boxes, that cannot reach the threshold)
  and their pyramid (:func:`tomocam.store.pyramid.label_pyramid`). Its threshold is a fraction of the largest
  value of any tile map, so it runs once phase 1 is complete.

Every array is chunked so that a task owns whole chunks at every level (:mod:`tomocam.store.create`): no two
tasks write the same chunk, and a chunk's value depends only on the tiles covering it.
"""

from __future__ import annotations

import numpy as np
import zarr

from tomocam.classes import background_indices
from tomocam.pipeline.plan import Plan
from tomocam.stitch import label_region, stitch_samples
from tomocam.store.create import heatmap_levels, label_levels
from tomocam.store.layout import label_dtype
from tomocam.store.pyramid import heatmap_pyramid, label_pyramid


def chunk_tiles(plan: Plan, index: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[slice, ...]]:
    """The voxel box ``[lo, hi)`` of level-0 chunk ``index`` and the grid ranges of the tiles covering it."""
    vlo, vhi = plan.sampling.voxel_box(*plan.chunk_box(index))
    return vlo, vhi, plan.grid.covering(vlo, vhi)


def _level_box(lo: tuple[int, ...], shape: tuple[int, ...], level: int) -> tuple[slice, ...]:
    """Where a box ``[lo, lo + shape)`` of level 0 (``lo`` a multiple of ``2**level``) lands at ``level``."""
    return tuple(slice(a >> level, (a >> level) + (n >> level)) for a, n in zip(lo, shape))


def stitch_heatmaps(plan: Plan, index: tuple[int, ...]) -> tuple[int, ...]:
    """Phase-2 task: every heatmap level of every method in level-0 chunk ``index``; returns ``index``."""
    root = zarr.open_group(plan.store, mode="r+")
    grid, sampling = plan.grid, plan.sampling
    lo, hi = plan.chunk_box(index)  # samples
    _, _, ranges = chunk_tiles(plan, index)
    starts = [grid.starts[d][r] for d, r in enumerate(ranges)]
    positions = [sampling.positions(d, a, b) for d, (a, b) in enumerate(zip(lo, hi))]
    shape = tuple(b - a for a, b in zip(lo, hi))
    for method in plan.methods:
        maps = np.asarray(root["tiles"][method][ranges])  # (*t, k, *feat)
        samples = stitch_samples(positions, starts, maps, grid.tile, plan.window, plan.device).cpu().numpy()  # (k, *n)
        group = root[method]
        for level, values in enumerate(heatmap_pyramid(samples, heatmap_levels(plan))):
            # A heatmap chunk is all zeros only for a class whose maps are: zarr's all-fill check before each
            # chunk write would cost as much as compressing it (14 MB of level 0: 0.31 -> 0.17 s CPU without it).
            array = group[str(level)].with_config({"write_empty_chunks": True})
            box = (slice(None), *_level_box(lo, shape, level))
            array[box] = values.astype(plan.heatmap_dtype, copy=False)
    return index


def write_labels(plan: Plan, index: tuple[int, ...], threshold: float) -> tuple[int, ...]:
    """Phase-2 task: every label level of the voxels of level-0 chunk ``index``, from the full-grid field of
    :attr:`Plan.label_method` above ``threshold``; returns ``index``."""
    root = zarr.open_group(plan.store, mode="r+")
    grid = plan.grid
    vlo, vhi, ranges = chunk_tiles(plan, index)
    maps = np.asarray(root["tiles"][plan.label_method][ranges])  # (*t, k, *feat)
    starts = [grid.starts[d][r] for d, r in enumerate(ranges)]
    labels = label_region(vlo, vhi, starts, maps, grid.tile, plan.window, threshold,
                          background_indices(plan.class_names), label_dtype(len(plan.class_indices)),
                          device=plan.device)  # (*box)
    seg = root["labels/segmentation"]
    for level, values in enumerate(label_pyramid(labels, label_levels(plan))):
        seg[str(level)][_level_box(vlo, labels.shape, level)] = values
    return index
