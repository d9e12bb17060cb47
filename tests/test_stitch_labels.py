"""Labels straight from tile maps (:func:`tomocam.stitch.label_region`) against their definition, the argmax of the
stitched full-grid field above a threshold (``label_block(stitch_region(...))``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tomocam.stitch import WINDOWS, label_region, stitch_region
from tomocam.stitch import labels as labels_module
from tomocam.stitch.labels import axis_pieces, label_region_by_classes, live_classes, map_bounds, max_and_argmax
from tomocam.store.pyramid import label_block
from tomocam.tile import TileGrid


def _region(grid: TileGrid, maps: np.ndarray, lo, hi):
    ranges = grid.covering(lo, hi)
    return [grid.starts[d][r] for d, r in enumerate(ranges)], maps[ranges]


def _definition(grid, maps, lo, hi, window, threshold, ignore):
    """The oracle and the field it labels."""
    starts, sub = _region(grid, maps, lo, hi)
    field = stitch_region(lo, tuple(b - a for a, b in zip(lo, hi)), starts, sub, grid.tile, window)  # (k, *shape)
    return label_block(field, threshold, tuple(ignore), "uint8"), field


def _near_ties(field: np.ndarray, threshold: float, tol: float) -> np.ndarray:
    """Voxels where the largest value is within ``tol`` of the threshold, or above it and within ``tol`` of the
    second largest (below the threshold, ties between classes do not matter)."""
    ordered = np.sort(np.concatenate([np.full_like(field[:1], -np.inf), field]), axis=0)  # one class: no tie
    second, first = ordered[-2], ordered[-1]
    return (np.abs(first - threshold) <= tol) | ((first > threshold) & (first - second <= tol))


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("shape, tile, stride, feat", [((37, 50, 44), 12, 6, 3), ((30, 41, 29), 10, 4, 5),
                                                       ((33, 28, 40), 8, 8, 2)])
def test_labels_equal_the_argmax_of_the_full_field(window, shape, tile, stride, feat):
    """Generic random maps, clamped last tiles, a box not aligned to the tiles, a background class: every voxel
    equals the definition (no near-ties occur in these cases, so no rounding excuse is needed)."""
    grid = TileGrid.build(shape, tile, stride)
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((*grid.grid_shape, 5, feat, feat, feat)).astype(np.float32)
    maps *= rng.random((*grid.grid_shape, 5, 1, 1, 1)).astype(np.float32) ** 3  # classes strong in some tiles only
    lo, hi = (3, 5, 0), shape
    _, field = _definition(grid, maps, lo, hi, window, 0.0, ())
    top = np.sort(field.max(0), axis=None)[int(0.7 * field[0].size) - 50 :][:100]  # about 30% of voxels exceed
    gap = np.argmax(np.diff(top))
    threshold = float(top[gap] + top[gap + 1]) / 2  # in the widest gap there: no voxel within rounding of it
    expected = label_block(field, threshold, (2,), "uint8")
    starts, sub = _region(grid, maps, lo, hi)
    got = label_region(lo, hi, starts, sub, grid.tile, window, threshold, (2,))
    assert 0.05 < (expected > 0).mean() < 0.95 and (expected == 3).sum() == 0  # a real mix; class 2 never labels
    assert not _near_ties(field, threshold, 1e-6 * np.abs(field).max()).any()
    np.testing.assert_array_equal(got, expected)
    for groups in ([(0, sub)], [(0, sub[:, :, :, :2]), (2, sub[:, :, :, 2:])]):  # whole, and in two groups
        every_class = label_region_by_classes(lo, hi, starts, groups, 5, grid.tile, window, threshold, (2,),
                                              select_live=False)  # a GPU's way, on CPU tensors
        np.testing.assert_array_equal(every_class, expected)


def test_sub_boxes_that_cannot_reach_the_threshold_are_skipped_without_products(monkeypatch):
    """The bound prunes: with one strong tile, only the sub-boxes it covers are stitched, and only its strong
    class there; the labels still equal the definition."""
    grid = TileGrid.build((60, 60, 60), 12, 6)
    maps = np.random.default_rng(0).random((*grid.grid_shape, 4, 3, 3, 3)).astype(np.float32) * 0.1
    maps[4, 4, 4, 1] += 5.0  # tile (4, 4, 4) covers voxels 24..35 on each axis
    threshold = 1.0 / 4**3
    stitched = []

    def counting_blend(tiles, ops):
        stitched.append((tiles.shape[3], tuple(op.shape[0] for op in ops)))
        return blend(tiles, ops)

    blend = labels_module.blend
    monkeypatch.setattr(labels_module, "blend", counting_blend)
    got = label_region((0, 0, 0), (60, 60, 60), list(grid.starts), maps, grid.tile, "cosine", threshold, edge=6)
    expected, _ = _definition(grid, maps, (0, 0, 0), (60, 60, 60), "cosine", threshold, ())
    np.testing.assert_array_equal(got, expected)
    assert (got == 2).any() and set(np.unique(got)) == {0, 2}
    assert len(stitched) == 8 and all(k == 1 for k, _ in stitched)  # 2 x 2 x 2 pieces of 6 voxels, one class
    assert sum(int(np.prod(s)) for _, s in stitched) == 12**3


def test_a_background_class_that_wins_leaves_voxels_unlabelled():
    grid = TileGrid.build((16, 16), 8, 4)
    maps = np.zeros((*grid.grid_shape, 3, 2, 2), np.float32)
    maps[..., 0, :, :] = 1.0  # background everywhere, above the threshold
    maps[..., 1, :, :] = 0.9
    got = label_region((0, 0), (16, 16), list(grid.starts), maps, grid.tile, "cosine", 0.01, ignore=(0,))
    assert (got == 0).all()
    got = label_region((0, 0), (16, 16), list(grid.starts), maps, grid.tile, "cosine", 0.01)
    assert (got == 1).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(4, 24), min_size=2, max_size=3), st.integers(2, 8), st.integers(1, 4), st.data())
def test_any_grid_and_box_agree_with_the_definition_but_for_rounding(shape, tile, feat, data):
    """Hypothesis-drawn shapes, tiles, strides, feature sizes, windows, boxes and thresholds: labels differ from the
    definition only where two classes (or a class and the threshold) are within float rounding."""
    tile = min(tile, min(shape))
    stride = data.draw(st.integers(1, tile))
    window = data.draw(st.sampled_from(WINDOWS))
    edge = data.draw(st.integers(1, 2 * tile))
    grid = TileGrid.build(tuple(shape), tile, stride)
    k = data.draw(st.integers(1, 4))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    maps = rng.standard_normal((*grid.grid_shape, k, *(feat,) * len(shape))).astype(np.float32)
    lo = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    hi = tuple(data.draw(st.integers(a + 1, n)) for a, n in zip(lo, shape))
    threshold = data.draw(st.floats(-0.5, 1.0)) * float(np.abs(maps).max()) / (tile / feat) ** len(shape)
    ignore = tuple(data.draw(st.sets(st.integers(0, k - 1), max_size=1)))
    expected, field = _definition(grid, maps, lo, hi, window, threshold, ignore)
    starts, sub = _region(grid, maps, lo, hi)
    got = label_region(lo, hi, starts, sub, grid.tile, window, threshold, ignore, edge=edge)
    differ = got != expected
    assert not (differ & ~_near_ties(field, threshold, 1e-5 * np.abs(field).max())).any()
    # the same classes read in groups (phase 2's memory bound) label the same
    size = data.draw(st.integers(1, k))
    groups = [(a, sub[(slice(None),) * len(shape) + (slice(a, a + size),)]) for a in range(0, k, size)]
    by_groups = label_region_by_classes(lo, hi, starts, groups, k, grid.tile, window, threshold, ignore, edge=edge,
                                        threads=1)
    differ = by_groups != expected
    assert not (differ & ~_near_ties(field, threshold, 1e-5 * np.abs(field).max())).any()
    # sub-boxes labelled on several threads at once: the same labels, bit for bit
    on_threads = label_region_by_classes(lo, hi, starts, groups, k, grid.tile, window, threshold, ignore, edge=edge,
                                         threads=3)
    np.testing.assert_array_equal(on_threads, by_groups)
    # a GPU's way (every class of a group stitched, no selection sent to the device), here on CPU tensors
    every_class = label_region_by_classes(lo, hi, starts, groups, k, grid.tile, window, threshold, ignore, edge=edge,
                                          select_live=False)
    differ = every_class != expected
    assert not (differ & ~_near_ties(field, threshold, 1e-5 * np.abs(field).max())).any()
    # only the classes that may exceed the threshold in the box, read in groups: the same labels
    bounds = map_bounds(torch.from_numpy(sub), len(shape)).numpy()
    live = live_classes(lo, hi, starts, bounds, grid.tile, (feat,) * len(shape), window, threshold)
    assert set(live) >= set(np.flatnonzero((field > threshold).any(axis=tuple(range(1, field.ndim)))))
    kept = sub[(slice(None),) * len(shape) + (live,)]
    groups = [(a, kept[(slice(None),) * len(shape) + (slice(a, a + size),)]) for a in range(0, len(live), size)]
    if len(live):
        by_live = label_region_by_classes(lo, hi, starts, groups, k, grid.tile, window, threshold, ignore,
                                          edge=edge, classes=live)
        differ = by_live != expected
        assert not (differ & ~_near_ties(field, threshold, 1e-5 * np.abs(field).max())).any()
    else:
        assert not expected.any()


def test_map_bounds_are_the_largest_value_and_magnitude_per_tile_and_class():
    maps = torch.tensor([[[[1.0, -3.0], [0.5, 2.0]], [[-1.0, -2.0], [-0.5, -4.0]]]])  # (1 tile, 2 classes, 2, 2)
    np.testing.assert_array_equal(map_bounds(maps, 2).numpy(), [[[2.0, 3.0], [-0.5, 4.0]]])


def test_axis_pieces_cut_at_tile_edges_and_list_the_covering_tiles():
    starts = np.array([0, 6, 12, 18, 22])  # tile 10, stride 6, the last one clamped to end at 32
    pieces = axis_pieces(3, 32, starts, 10, 5, "cosine", edge=6)
    assert [(p.lo, p.hi) for p in pieces] == [(3, 6), (6, 12), (12, 18), (18, 22), (22, 28), (28, 32)]
    for p in pieces:
        covering = [i for i, s in enumerate(starts) if s < p.hi and s + 10 > p.lo]
        assert list(range(p.tiles.start, p.tiles.stop)) == covering
        assert p.op.shape == (p.hi - p.lo, 5 * len(covering))
        sums = p.op.double().sum(1).numpy()
        assert p.row_sums == pytest.approx((sums.min(), sums.max()))
    assert [(p.lo, p.hi) for p in axis_pieces(3, 32, starts, 10, 5, "cosine", edge=100)] == [(3, 32)]


def test_max_and_argmax_gives_the_first_maximum():
    x = np.array([[1, 5, 2, 7], [3, 5, 2, 1], [3, 0, 2, 7]], np.float32)
    value, first = max_and_argmax(x)
    np.testing.assert_array_equal(value, x.max(0))
    np.testing.assert_array_equal(first, [1, 0, 0, 0])
    y = np.random.default_rng(0).standard_normal((300, 7, 5)).astype(np.float32)
    np.testing.assert_array_equal(max_and_argmax(y)[1], y.argmax(0))
