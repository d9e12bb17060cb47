"""Stitching maths: windows, one tile, constants, and tile-then-stitch returning the field it was cut from."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tomocam import resize_maps
from tomocam.stitch import WINDOWS, axis_window, stitch_region, stitch_samples
from tomocam.tile import TileGrid


@pytest.mark.parametrize("kind", WINDOWS)
def test_windows_are_positive_everywhere_and_peak_in_the_centre(kind):
    for n in (6, 7, 8):
        w = axis_window(n, kind)
        assert w.shape == (n,) and (w > 0).all()
        assert w.max() == w[(n - 1) // 2 : n // 2 + 1].max()


def test_one_tile_gives_that_tiles_resized_map():
    maps = torch.randn(1, 3, 4, 5, 3)
    grid_maps = maps.numpy().reshape(1, 1, 1, 3, 4, 5, 3)  # (*t, k, *feat), one tile
    starts = [np.array([0])] * 3
    out = stitch_region((0, 0, 0), (8, 10, 6), starts, grid_maps, (8, 10, 6))
    np.testing.assert_allclose(out, resize_maps(maps, (8, 10, 6))[0].numpy(), rtol=1e-5, atol=1e-6)


def _grid_tiles(field: np.ndarray, grid: TileGrid) -> np.ndarray:
    """Every tile of ``field`` (k, *shape) on ``grid`` as ``(*grid_shape, k, *tile)``."""
    tiles = np.empty((*grid.grid_shape, field.shape[0], *grid.tile), np.float32)
    for index in itertools.product(*(range(g) for g in grid.grid_shape)):
        start = grid.tile_start(index)
        tiles[index] = field[(slice(None), *(slice(a, a + t) for a, t in zip(start, grid.tile)))]
    return tiles


def _naive_stitch(lo, size, grid: TileGrid, maps: np.ndarray, kind: str) -> np.ndarray:
    """The definition, tile by tile at full resolution: sum_t w_t up(m_t) / sum_t w_t (an independent oracle)."""
    nd = len(size)
    k = maps.shape[nd]
    acc = np.zeros((k, *[n for n in grid.shape]))
    wsum = np.zeros(grid.shape)
    window = np.ones(())
    for t in grid.tile:
        window = np.multiply.outer(window, axis_window(t, kind))
    for index in itertools.product(*(range(g) for g in grid.grid_shape)):
        start = grid.tile_start(index)
        up = resize_maps(torch.from_numpy(maps[index][None]).double(), grid.tile)[0].numpy()
        box = tuple(slice(a, a + t) for a, t in zip(start, grid.tile))
        acc[(slice(None), *box)] += window * up
        wsum[box] += window
    region = tuple(slice(a, a + s) for a, s in zip(lo, size))
    return (acc / wsum)[(slice(None), *region)]


@pytest.mark.parametrize("kind", WINDOWS)
def test_separable_blend_equals_the_tile_by_tile_definition(kind):
    grid = TileGrid.build((30, 26, 22), 8, 3)
    maps = np.random.default_rng(2).standard_normal((*grid.grid_shape, 2, 2, 2, 2)).astype(np.float32)
    lo, size = (3, 0, 5), (20, 26, 11)
    ranges = grid.covering(lo, tuple(a + s for a, s in zip(lo, size)))
    starts = [grid.starts[d][r] for d, r in enumerate(ranges)]
    out = stitch_region(lo, size, starts, maps[ranges], grid.tile, kind)
    np.testing.assert_allclose(out, _naive_stitch(lo, size, grid, maps, kind), rtol=1e-4, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(4, 20), min_size=2, max_size=3), st.integers(2, 6), st.data())
def test_tile_then_stitch_returns_the_field(shape, tile, data):
    """Tiles cut from one field (at full resolution) stitch back to that field exactly, for any blend window."""
    tile = min(tile, min(shape))
    stride = data.draw(st.integers(1, tile))
    kind = data.draw(st.sampled_from(WINDOWS))
    grid = TileGrid.build(tuple(shape), tile, stride)
    field = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    maps = _grid_tiles(field, grid)
    lo = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    size = tuple(data.draw(st.integers(1, n - a)) for a, n in zip(lo, shape))
    ranges = grid.covering(lo, tuple(a + s for a, s in zip(lo, size)))
    starts = [grid.starts[d][r] for d, r in enumerate(ranges)]
    out = stitch_region(lo, size, starts, maps[ranges], grid.tile, kind)
    np.testing.assert_allclose(out, field[(slice(None), *(slice(a, a + s) for a, s in zip(lo, size)))], rtol=1e-5,
                               atol=1e-5)


def test_constant_tile_maps_stitch_to_a_constant_in_score_units():
    grid = TileGrid.build((30, 26, 22), 8, 3)
    maps = np.full((*grid.grid_shape, 2, 2, 2, 2), 5.0, np.float32)  # feature maps 2^3, value 5
    out = stitch_region((0, 0, 0), (30, 26, 22), list(grid.starts), maps, grid.tile)
    # sum over one tile stays 5 * 8 (the feature map's sum): each voxel holds 40 / 8**3
    np.testing.assert_allclose(out, 5.0 * 8 / 8**3, rtol=1e-6)


def test_regions_stitch_to_the_same_values_as_the_whole():
    grid = TileGrid.build((20, 20), 6, 4)
    maps = np.random.default_rng(1).standard_normal((*grid.grid_shape, 3, 3, 3)).astype(np.float32)
    whole = stitch_region((0, 0), (20, 20), list(grid.starts), maps, grid.tile)
    lo, size = (2, 3), (15, 12)
    ranges = grid.covering(lo, (17, 15))
    part = stitch_region(lo, size, [grid.starts[d][r] for d, r in enumerate(ranges)], maps[ranges], grid.tile)
    np.testing.assert_allclose(part, whole[:, 2:17, 3:15], rtol=1e-5, atol=1e-6)


def test_stitching_class_group_by_class_group_gives_the_same_samples(monkeypatch):
    """Maps larger than ``BLEND_BYTES`` are blended a few classes at a time (bounded memory), to the same values."""
    blend_module = importlib.import_module("tomocam.stitch.blend")  # the package exports the function blend

    grid = TileGrid.build((23, 19, 21), 8, 5)
    maps = np.random.default_rng(3).standard_normal((*grid.grid_shape, 5, 2, 2, 2)).astype(np.float32)
    positions = [np.arange(1, n, 3) for n in grid.shape]
    whole = stitch_samples(positions, list(grid.starts), maps, grid.tile)
    monkeypatch.setattr(blend_module, "BLEND_BYTES", 2 * maps[:, :, :, 0].nbytes)  # two classes at a time
    np.testing.assert_array_equal(stitch_samples(positions, list(grid.starts), maps, grid.tile).numpy(), whole.numpy())


def test_uncovered_voxels_are_refused():
    with pytest.raises(ValueError, match="not all covered"):
        stitch_region((0,), (10,), [np.array([0])], np.ones((1, 1, 2), np.float32), (4,))
