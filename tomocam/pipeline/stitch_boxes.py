"""Phase 2, stitching boxes: from the per-tile maps to every stored level of the heatmaps and labels, Dask tasks
per level-0 heatmap chunk (a box of voxels).

The stitching runs on the plan's device (on a GPU worker the matrix products cost next to nothing).
A chunk of level 0 (``chunk`` samples per axis, :class:`tomocam.store.layout.HeatmapSampling`) stands for a box of
voxels. Each task reads the feature-resolution maps of the tiles covering that box once (only those tiles; in
groups of classes of about :data:`MAPS_BYTES`, so a task's memory does not grow with the maps' size) and writes
every pyramid level of its box from memory, so nothing reads level 0 back:

- :func:`stitch_heatmaps`, for each method: level 0, the field at the samples
  (:func:`tomocam.stitch.stitch_samples`), and the coarser levels as 2x means of it
  (:func:`tomocam.store.pyramid.heatmap_pyramid`). It needs only the phase-1 blocks covering the box, so the run
  starts it as soon as they are done.
- :func:`write_labels`: the labels of every voxel of the box
  (:func:`tomocam.stitch.labels.label_region_by_classes`, which never holds the full-grid field of all classes,
  skips the classes, and sub-boxes, that cannot reach the threshold, and keeps the largest value so far between
  class groups)
  and their pyramid (:func:`tomocam.store.pyramid.label_pyramid`). Its threshold is a fraction of the largest
  value of any tile map, so it runs once phase 1 is complete.

Every array is chunked so that a task owns whole chunks at every level (:mod:`tomocam.store.create`): no two
tasks write the same chunk, and a chunk's value depends only on the tiles covering it. Tasks read and write
through the run's :class:`tomocam.store.writer.StoreWriter`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from tomocam.classes import background_indices
from tomocam.pipeline.plan import Plan
from tomocam.stitch import stitch_samples
from tomocam.stitch.labels import label_region_by_classes, live_classes
from tomocam.store.create import heatmap_levels, label_levels
from tomocam.store.layout import label_dtype
from tomocam.store.pyramid import heatmap_pyramid, label_pyramid
from tomocam.store.writer import StoreWriter


def chunk_tiles(plan: Plan, index: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[slice, ...]]:
    """The voxel box ``[lo, hi)`` of level-0 chunk ``index`` and the grid ranges of the tiles covering it."""
    vlo, vhi = plan.sampling.voxel_box(*plan.chunk_box(index))
    return vlo, vhi, plan.tile_grid.covering(vlo, vhi)


#: Bytes of tile maps a phase-2 task holds at once: it reads its box's maps in groups of classes of about this size
#: (all classes when they fit), so its memory is set by this and the box, not by the number of classes or the size
#: of the maps (measured: docs/architecture.md, "Design decisions").
MAPS_BYTES = 48 << 20


def class_groups(n_classes: int, class_bytes: int, budget: int | None = None) -> list[slice]:
    """Consecutive classes in groups whose maps (``class_bytes`` each) fit ``budget`` (default
    :data:`MAPS_BYTES`): at least one a group."""
    per = max(1, (MAPS_BYTES if budget is None else budget) // max(1, class_bytes))
    return [slice(a, min(a + per, n_classes)) for a in range(0, n_classes, per)]


def _box_groups(plan: Plan, ranges: tuple[slice, ...]) -> list[slice]:
    """The class groups (:func:`class_groups`) in which a task reads the maps of the tiles ``ranges``."""
    n_tiles = math.prod(r.stop - r.start for r in ranges)
    return class_groups(len(plan.class_indices), 4 * n_tiles * math.prod(plan.feature_shape))


def _box_maps(plan: Plan, writer: StoreWriter, method: str, ranges: tuple[slice, ...],
              groups: list[slice] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(first, maps (*t, g, *feat))`` of ``method``'s maps of the tiles ``ranges``, group by group of
    ``groups`` (default :func:`_box_groups`), ``first`` the group's first class among those read."""
    first = 0
    for classes in _box_groups(plan, ranges) if groups is None else groups:
        yield first, writer.tile_maps(method, ranges, classes)
        first += classes.stop - classes.start


def stitch_heatmaps(plan: Plan, writer: StoreWriter, index: tuple[int, ...]) -> tuple[int, ...]:
    """Phase-2 task: every heatmap level of every method in level-0 chunk ``index``; returns ``index``."""
    grid, sampling = plan.tile_grid, plan.sampling
    lo, hi = plan.chunk_box(index)  # samples
    _, _, ranges = chunk_tiles(plan, index)
    starts = [grid.starts[d][r] for d, r in enumerate(ranges)]
    positions = [sampling.positions(d, a, b) for d, (a, b) in enumerate(zip(lo, hi))]
    levels = heatmap_levels(writer.spec)
    for method in plan.methods:
        for first, maps in _box_maps(plan, writer, method, ranges):  # (*t, g, *feat)
            samples = stitch_samples(positions, starts, maps, grid.tile, plan.window, plan.device)  # (g, *n)
            classes = slice(first, first + samples.shape[0])
            writer.write_heatmaps(method, classes, lo, heatmap_pyramid(samples.cpu().numpy(), levels))
    return index


def write_labels(plan: Plan, writer: StoreWriter, index: tuple[int, ...], threshold: float) -> tuple[int, ...]:
    """Phase-2 task: every label level of the voxels of level-0 chunk ``index``, from the full-grid field of
    :attr:`Plan.label_method` above ``threshold``; returns ``index``.

    Only the class groups holding a class that may exceed the threshold in the box are read (from the tiles' map
    bounds, :func:`tomocam.stitch.labels.live_classes`): where no class may label a voxel, the box's labels are 0
    and no map is read."""
    grid = plan.tile_grid
    vlo, vhi, ranges = chunk_tiles(plan, index)
    starts = [grid.starts[d][r] for d, r in enumerate(ranges)]
    bounds = writer.tile_bounds(ranges)  # (*t, k, 2)
    live = live_classes(vlo, vhi, starts, bounds, grid.tile, plan.feature_shape, plan.window, threshold)
    background = background_indices(plan.class_names)
    dtype = label_dtype(len(plan.class_indices))
    groups = [g for g in _box_groups(plan, ranges) if ((live >= g.start) & (live < g.stop)).any()]  # to read
    if np.isin(live, background).all():  # no class that labels voxels may exceed the threshold here
        labels = np.zeros(tuple(b - a for a, b in zip(vlo, vhi)), dtype)
    else:
        labels = label_region_by_classes(vlo, vhi, starts, _box_maps(plan, writer, plan.label_method, ranges, groups),
                                         len(plan.class_indices), grid.tile, plan.window, threshold, background,
                                         dtype, device=plan.device,
                                         classes=np.concatenate([np.arange(g.start, g.stop) for g in groups]))
    writer.write_labels(vlo, label_pyramid(labels, label_levels(writer.spec)))
    return index
