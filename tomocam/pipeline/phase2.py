"""Phase 2: from the per-tile maps to the stored heatmaps and labels, Dask tasks per level-0 heatmap chunk.

The stitching runs on the plan's device (on a GPU worker the matrix products cost next to nothing).
A chunk of level 0 (``chunk`` samples per axis, :class:`tomocam.store.layout.Sampling`) stands for a box of
voxels. :func:`stitch_heatmaps` reads the feature-resolution maps of every tile covering that box once (they are
small) and writes, for each method, level 0 (the field at the samples, :func:`tomocam.stitch.stitch_samples`) and
level 1 (2x means of level 0, from memory); it needs only the phase-1 blocks covering the box, so the run starts
it as soon as they are done. :func:`write_labels` stitches the full-grid field of the box one label chunk at a
time and writes the labels; its threshold is a fraction of the largest value of any tile map, so it runs once
phase 1 is complete. Every array a task writes is chunked so that the task owns whole chunks: no two tasks write
the same chunk, and a chunk's value depends only on the tiles covering it.
"""

from __future__ import annotations

import itertools

import numpy as np
import zarr

from tomocam.classes import background_indices
from tomocam.pipeline.plan import Plan
from tomocam.stitch import stitch_samples
from tomocam.store.layout import label_dtype
from tomocam.store.pyramid import downsample_mean, label_block


def _sub_boxes(lo: tuple[int, ...], hi: tuple[int, ...], edge: int):
    """Boxes ``(lo, hi)`` of at most ``edge`` voxels per axis tiling ``[lo, hi)``, aligned to multiples of ``edge``."""
    axes = [range(a, b, edge) for a, b in zip(lo, hi)]
    for starts in itertools.product(*axes):
        yield starts, tuple(min(s + edge, b) for s, b in zip(starts, hi))


def chunk_tiles(plan: Plan, index: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[slice, ...]]:
    """The voxel box ``[lo, hi)`` of level-0 chunk ``index`` and the grid ranges of the tiles covering it."""
    vlo, vhi = plan.sampling.voxel_box(*plan.chunk_box(index))
    return vlo, vhi, plan.grid.covering(vlo, vhi)


def stitch_heatmaps(plan: Plan, index: tuple[int, ...]) -> tuple[int, ...]:
    """Phase-2 task: levels 0 and 1 of every method in level-0 chunk ``index``; returns ``index``."""
    root = zarr.open_group(plan.store, mode="r+")
    grid, sampling = plan.grid, plan.sampling
    lo, hi = plan.chunk_box(index)  # samples
    _, _, ranges = chunk_tiles(plan, index)
    starts = [grid.starts[d][r] for d, r in enumerate(ranges)]
    positions = [sampling.positions(d, a, b) for d, (a, b) in enumerate(zip(lo, hi))]
    box = (slice(None), *(slice(a, b) for a, b in zip(lo, hi)))
    half = (slice(None), *(slice(a // 2, b // 2) for a, b in zip(lo, hi)))  # lo is a multiple of the even chunk
    for method in plan.methods:
        maps = np.asarray(root["tiles"][method][ranges])  # (*t, k, *feat)
        samples = stitch_samples(positions, starts, maps, grid.tile, plan.window, plan.device).cpu().numpy()  # (k, *n)
        group = root[method]
        group["0"][box] = samples.astype(plan.heatmap_dtype)
        if "1" in group:
            group["1"][half] = downsample_mean(samples).astype(plan.heatmap_dtype)
    return index


def write_labels(plan: Plan, index: tuple[int, ...], threshold: float) -> tuple[int, ...]:
    """Phase-2 task: the labels of the voxels of level-0 chunk ``index``, from the full-grid field of
    :attr:`Plan.label_method` above ``threshold``, one label chunk in memory at a time; returns ``index``."""
    root = zarr.open_group(plan.store, mode="r+")
    grid = plan.grid
    vlo, vhi, ranges = chunk_tiles(plan, index)
    maps = np.asarray(root["tiles"][plan.label_method][ranges])  # (*t, k, *feat)
    ignore = background_indices(plan.class_names)
    dtype = label_dtype(len(plan.class_indices))
    labels = root["labels/segmentation/0"]
    for lo, hi in _sub_boxes(vlo, vhi, plan.chunk):  # vlo is a multiple of the label chunk
        sub = grid.covering(lo, hi)
        local = tuple(slice(s.start - r.start, s.stop - r.start) for s, r in zip(sub, ranges))
        starts = [grid.starts[d][s] for d, s in enumerate(sub)]
        positions = [np.arange(a, b) for a, b in zip(lo, hi)]
        field = stitch_samples(positions, starts, maps[local], grid.tile, plan.window, plan.device)  # (k, *shape)
        labels[tuple(slice(a, b) for a, b in zip(lo, hi))] = label_block(field, threshold, ignore, dtype)
    return index
