"""The tile plan: grid from shapes alone, clamped last tile, blocks, covering, and cutting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from explain_models import write_mrc
from hypothesis import given, settings
from hypothesis import strategies as st

from tomocam.errors import InputError
from tomocam.models.inputs import cut_tiles
from tomocam.read import open_tomogram
from tomocam.tile import TileGrid, axis_starts, make_blocks, read_slab, slab_starts


def test_axis_starts_examples():
    np.testing.assert_array_equal(axis_starts(100, 40, 20), [0, 20, 40, 60])
    np.testing.assert_array_equal(axis_starts(50, 40, 20), [0, 10])  # last clamped to the edge
    np.testing.assert_array_equal(axis_starts(40, 40, 20), [0])
    with pytest.raises(InputError, match="smaller than one tile"):
        axis_starts(30, 40, 20)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 200), st.integers(1, 50), st.data())
def test_axis_starts_cover_every_voxel_inside_the_volume(length, tile, data):
    if tile > length:
        return
    stride = data.draw(st.integers(1, tile))
    s = axis_starts(length, tile, stride)
    assert s[0] == 0 and s[-1] == length - tile
    assert np.all(np.diff(s) > 0) and np.all(np.diff(s) <= stride)
    covered = np.zeros(length, bool)
    for a in s:
        covered[a : a + tile] = True
    assert covered.all()


def test_blocks_partition_the_grid_and_covering_finds_overlapping_tiles():
    grid = TileGrid.build((100, 50, 61), 20)
    blocks = make_blocks(grid, 3)
    seen = np.zeros(grid.grid_shape, int)
    for b in blocks:
        seen[b.grid_slices] += 1
        assert len(b.indices()) == b.n_tiles
    assert (seen == 1).all()
    lo, hi = (30, 0, 40), (64, 20, 61)
    ranges = grid.covering(lo, hi)
    for d, r in enumerate(ranges):
        starts = grid.starts[d]
        overlap = (starts < hi[d]) & (starts + grid.tile[d] > lo[d])
        np.testing.assert_array_equal(np.flatnonzero(overlap), np.arange(r.start, r.stop))


def test_cut_tiles_from_a_block_slab_equal_direct_slices():
    vol = np.random.default_rng(0).standard_normal((30, 40, 25)).astype(np.float32)
    grid = TileGrid.build(vol.shape, (10, 12, 8), (5, 7, 4))
    for block in make_blocks(grid, 2):
        slab, origin = read_slab(vol, grid, block)
        tiles = cut_tiles(torch.from_numpy(slab), slab_starts(grid, block, origin).tolist(), grid.tile)
        for t, index in zip(tiles.numpy(), block.indices()):
            s = grid.tile_start(index)
            np.testing.assert_array_equal(t, vol[tuple(slice(a, a + n) for a, n in zip(s, grid.tile))])


def _resident_file_kib() -> int:
    """This process's resident pages of mapped files (Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("RssFile:")))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_reading_slabs_of_a_memory_mapped_tomogram_keeps_none_of_it_resident(tmp_path):
    """A run reads the whole tomogram through one cached memory map: the pages of each slab are given back once
    copied, so memory does not grow with the tomogram (read here: 32 MiB, through the pipeline's own reader)."""
    vol = np.random.default_rng(0).standard_normal((128, 256, 256)).astype(np.float32)
    tomo = open_tomogram(write_mrc(tmp_path / "t.mrc", vol))
    grid = TileGrid.build(vol.shape, 64)
    before = _resident_file_kib()
    for block in make_blocks(grid, 2):
        slab, origin = read_slab(tomo.array(), grid, block)
        np.testing.assert_array_equal(slab, vol[tuple(slice(o, o + n) for o, n in zip(origin, slab.shape))])
    assert _resident_file_kib() - before < 4096  # KiB; kept resident, the map would hold all 32 MiB


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_a_slab_is_read_a_few_planes_at_a_time_so_little_of_the_file_is_ever_mapped(tmp_path, monkeypatch):
    """Copying a box out of a memory map maps every page its rows lie on (here a slab 192 voxels wide of
    256-voxel rows: 18 MiB of pages for 13.5 MiB of voxels); read in steps, at most a step's pages are mapped."""
    from tomocam.tile import cut

    vol = np.random.default_rng(1).standard_normal((96, 256, 256)).astype(np.float32)
    tomo = open_tomogram(write_mrc(tmp_path / "t.mrc", vol))
    grid = TileGrid.build(vol.shape, (96, 192, 192), (96, 64, 64))
    block = make_blocks(grid, 1)[0]
    release = cut.release_pages

    def most_mapped(step: int) -> tuple[int, int]:
        mapped = []

        def measured(volume):
            mapped.append(_resident_file_kib())
            release(volume)

        monkeypatch.setattr(cut, "release_pages", measured)
        monkeypatch.setattr(cut, "READ_STEP_BYTES", step)
        before = _resident_file_kib()
        slab, origin = read_slab(tomo.array(), grid, block)
        np.testing.assert_array_equal(slab, vol[tuple(slice(o, o + n) for o, n in zip(origin, slab.shape))])
        return len(mapped), max(mapped) - before

    assert most_mapped(1 << 40)[1] > 16 * 1024  # KiB: the whole slab's rows at once
    steps, kib = most_mapped(2 << 20)
    assert steps == 10 and kib < 6 * 1024  # a plane spans 192 KiB: 10 planes a step, 1.9 MiB and slop


def test_describe_is_a_dry_run_line():
    assert TileGrid.build((100, 50, 40), 40, 20).describe().endswith("4 x 2 x 1 = 8 tiles")
