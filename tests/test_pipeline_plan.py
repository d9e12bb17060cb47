"""Plan defaults that depend on the device."""

from __future__ import annotations

import pytest

from tomocam.pipeline.plan import block_edge, default_batch_size
from tomocam.tile import TileGrid


@pytest.mark.parametrize(("device", "batch"), [("cpu", 32), ("cuda:0", 256), ("cuda", 256)])
def test_default_batch_size_is_larger_on_a_gpu(device, batch):
    assert default_batch_size(device) == batch


def test_block_edge_fits_the_slab_results_and_their_encoding_copies_in_the_budget():
    grid = TileGrid.build((400, 400, 400), 40, 20)
    per_tile = 4 * 23 * 10**3  # 23 classes of 10^3 cells
    def need(edge: int) -> int:
        return 4 * ((edge - 1) * 20 + 40) ** 3 + 3 * edge**3 * per_tile

    assert block_edge(8, grid, per_tile, need(8)) == 8
    assert block_edge(8, grid, per_tile, need(8) - 1) == 7
    assert block_edge(8, grid, per_tile, need(5)) == 5
    assert block_edge(8, grid, per_tile, 1) == 1  # never below one tile
    small = TileGrid.build((40, 80, 80), 40, 20)  # one tile thick: the slab is cut at the volume's edge
    assert block_edge(8, small, per_tile, 4 * 40 * 80 * 80 + 3 * 8**3 * per_tile) == 8
