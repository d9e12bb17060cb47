"""Stitching maths: windows, one tile, constants, and tile-then-stitch returning the field it was cut from."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tomocam import resize_maps
from tomocam.stitch import WINDOWS, stitch_region, tile_window
from tomocam.tile import TileGrid


@pytest.mark.parametrize("kind", WINDOWS)
def test_windows_are_positive_everywhere_and_peak_in_the_centre(kind):
    w = tile_window((6, 7, 8), kind)
    assert w.shape == (6, 7, 8) and (w > 0).all()
    assert w.max() == w[2:4, 3, 3:5].max()


def test_one_tile_gives_that_tiles_resized_map():
    maps = torch.randn(1, 3, 4, 5, 3)
    out = stitch_region((0, 0, 0), (8, 10, 6), [(np.zeros((1, 3), int), maps.numpy())], tile_window((8, 10, 6)))
    # w * m / w: equal up to one float32 rounding
    np.testing.assert_allclose(out, resize_maps(maps, (8, 10, 6))[0].numpy(), rtol=1e-6, atol=1e-7)


def _tiles_of(field: np.ndarray, grid: TileGrid):
    """Every tile of ``field`` (k, *shape) on ``grid``, as (starts (m, nd), maps (m, k, *tile))."""
    idx = list(itertools.product(*(range(g) for g in grid.grid_shape)))
    starts = np.array([grid.tile_start(i) for i in idx])
    maps = np.stack([field[(slice(None), *(slice(a, a + t) for a, t in zip(s, grid.tile)))] for s in starts])
    return starts, maps


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(4, 20), min_size=2, max_size=3), st.integers(2, 6), st.data())
def test_tile_then_stitch_returns_the_field(shape, tile, data):
    """Tiles cut from one field (at full resolution) stitch back to that field exactly, for any blend window."""
    tile = min(tile, min(shape))
    stride = data.draw(st.integers(1, tile))
    kind = data.draw(st.sampled_from(WINDOWS))
    grid = TileGrid.build(tuple(shape), tile, stride)
    field = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    starts, maps = _tiles_of(field, grid)
    lo = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    size = tuple(data.draw(st.integers(1, n - a)) for a, n in zip(lo, shape))
    out = stitch_region(lo, size, [(starts, maps)], tile_window(grid.tile, kind))
    np.testing.assert_allclose(out, field[(slice(None), *(slice(a, a + s) for a, s in zip(lo, size)))], rtol=1e-5, atol=1e-5)


def test_constant_tile_maps_stitch_to_a_constant_in_score_units():
    grid = TileGrid.build((30, 26, 22), 8, 3)
    starts = np.array([grid.tile_start(i) for i in itertools.product(*(range(g) for g in grid.grid_shape))])
    maps = np.full((len(starts), 2, 2, 2, 2), 5.0, np.float32)  # feature maps 2^3, value 5
    batches = [(starts[i : i + 7], maps[i : i + 7]) for i in range(0, len(starts), 7)]
    out = stitch_region((0, 0, 0), (30, 26, 22), batches, tile_window(grid.tile))
    # sum over one tile stays 5 * 8 (the feature map's sum): each voxel holds 40 / 8**3
    np.testing.assert_allclose(out, 5.0 * 8 / 8**3, rtol=1e-6)


def test_batching_does_not_change_the_result():
    grid = TileGrid.build((20, 20), 6, 4)
    starts = np.array([grid.tile_start(i) for i in itertools.product(*(range(g) for g in grid.grid_shape))])
    maps = np.random.default_rng(1).standard_normal((len(starts), 3, 3, 3)).astype(np.float32)
    w = tile_window(grid.tile)
    whole = stitch_region((2, 3), (15, 12), [(starts, maps)], w)
    parts = stitch_region((2, 3), (15, 12), [(starts[i : i + 5], maps[i : i + 5]) for i in range(0, len(starts), 5)], w)
    np.testing.assert_array_equal(whole, parts)
