"""Resizing maps to the input grid keeps every map's sum (score units)."""

from __future__ import annotations

import pytest
import torch

from tomocam import resize_maps


@pytest.mark.parametrize("src,dst", [((5, 5, 5), (40, 40, 40)), ((10, 10, 10), (40, 40, 40)), ((3, 4, 5), (7, 9, 11)),
                                     ((5, 5), (40, 40)), ((6, 3), (13, 8))])
def test_resize_preserves_each_map_sum(src, dst):
    maps = torch.randn(3, 4, *src)
    resized = resize_maps(maps, dst)
    assert resized.shape == (3, 4, *dst)
    torch.testing.assert_close(resized.flatten(2).sum(-1), maps.flatten(2).sum(-1), rtol=1e-5, atol=1e-5)


def test_constant_map_becomes_constant_density():
    maps = torch.full((1, 2, 5, 5, 5), 8.0)
    resized = resize_maps(maps, (40, 40, 40))
    torch.testing.assert_close(resized, torch.full((1, 2, 40, 40, 40), 8.0 / 512))


def test_peak_stays_where_it_was():
    maps = torch.zeros(1, 1, 5, 5, 5)
    maps[0, 0, 1, 3, 2] = 1.0
    resized = resize_maps(maps, (40, 40, 40))
    z, y, x = torch.unravel_index(resized[0, 0].argmax(), (40, 40, 40))
    assert (int(z) // 8, int(y) // 8, int(x) // 8) == (1, 3, 2)


def test_same_size_is_a_copy_and_wrong_rank_is_refused():
    maps = torch.randn(1, 1, 4, 4)
    assert torch.equal(resize_maps(maps, (4, 4)), maps)
    with pytest.raises(ValueError):
        resize_maps(maps, (4, 4, 4))
