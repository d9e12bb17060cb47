"""Weighted blending of tile maps into a region of the output grid (pure array maths, no I/O).

Each tile's map at feature resolution ``(k, *feat)`` is first resized to the tile size with
:func:`tomocam.resize_maps`, which preserves each map's sum: the stitched values stay in score units (the
integral of a class map over a tile is that tile's class score contribution). Tiles are then blended:
``out = sum_t w_t * m_t / sum_t w_t`` over the tiles ``t`` covering each voxel, with ``w`` a smooth window.
The region is accumulated tile by tile in the order given, so the result depends only on which tiles cover it,
never on how the work was split.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np


def upsample_tiles(maps: np.ndarray, tile: tuple[int, ...]) -> np.ndarray:
    """Resize ``(m, k, *feat)`` feature-resolution maps to ``(m, k, *tile)``, preserving each map's sum."""
    import torch

    from tomocam import resize_maps

    if tuple(maps.shape[2:]) == tuple(tile):
        return np.asarray(maps, dtype=np.float32)
    with torch.no_grad():
        out = resize_maps(torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)), tuple(tile))
    return out.numpy()


def accumulate(
    acc: np.ndarray,
    wsum: np.ndarray,
    lo: tuple[int, ...],
    starts: np.ndarray,
    tile_maps: np.ndarray,
    window: np.ndarray,
) -> None:
    """Add window-weighted tiles into a region, in place.

    ``acc`` is ``(k, *region)``, ``wsum`` is ``(*region)``, ``lo`` the region's first voxel in the volume;
    ``starts`` ``(m, nd)`` are the tiles' first voxels and ``tile_maps`` ``(m, k, *tile)`` their maps;
    ``window`` has the tile's shape. Parts of tiles outside the region are ignored. The sums run in torch
    (in place, multi-threaded, no temporaries per tile), tile after tile in the given order.
    """
    import torch

    acc_t, wsum_t = torch.from_numpy(acc), torch.from_numpy(wsum)  # views: updates land in the numpy arrays
    w = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))
    maps = torch.from_numpy(np.ascontiguousarray(tile_maps, dtype=np.float32))
    region = wsum.shape
    tile = window.shape
    for start, tmap in zip(starts, maps):
        out_sl, tile_sl = [], []
        for s, l, t, r in zip(start, lo, tile, region):
            a, b = max(int(s), l), min(int(s) + t, l + r)
            if a >= b:
                break
            out_sl.append(slice(a - l, b - l))
            tile_sl.append(slice(a - int(s), b - int(s)))
        else:
            wt = w[tuple(tile_sl)]
            acc_t[(slice(None), *out_sl)].addcmul_(tmap[(slice(None), *tile_sl)], wt)
            wsum_t[tuple(out_sl)].add_(wt)


def finish(acc: np.ndarray, wsum: np.ndarray) -> np.ndarray:
    """Divide the weighted sums ``(k, *region)`` by the summed weights ``(*region)`` (all positive if covered)."""
    if not (wsum > 0).all():
        raise ValueError("some voxels of the region are covered by no tile")
    return (acc / wsum[None]).astype(np.float32)


def stitch_region(
    lo: tuple[int, ...],
    shape: tuple[int, ...],
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    window: np.ndarray,
) -> np.ndarray:
    """Stitch a region ``[lo, lo + shape)`` from batches of ``(starts (m, nd), feature maps (m, k, *feat))``.

    Maps are resized to the window's (tile) shape batch by batch, so memory stays bounded by one batch.
    Returns ``(k, *shape)`` float32.
    """
    acc: np.ndarray | None = None
    wsum = np.zeros(shape, dtype=np.float32)
    for starts, maps in batches:
        tile_maps = upsample_tiles(maps, window.shape)
        if acc is None:
            acc = np.zeros((tile_maps.shape[1], *shape), dtype=np.float32)
        accumulate(acc, wsum, lo, starts, tile_maps, window)
    if acc is None:
        raise ValueError("no tile covers the region")
    return finish(acc, wsum)
