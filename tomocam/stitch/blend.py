"""Stitching tile maps into a region of the output grid, as three small matrix products (pure array maths).

Each tile's map at feature resolution is resized to the tile size (:func:`tomocam.explain.resize.interpolation_matrix`,
mass-conserving, so stitched values stay in score units), weighted by a smooth window ``w`` and blended:
``out = sum_t w_t * up(m_t) / sum_t w_t`` over the tiles ``t`` covering each voxel.

Every step is separable: resizing and the window act axis by axis, and the tiles form a product grid (one list
of start positions per axis). So the whole blend is one linear operator per axis, ``B_d (length, tiles * feat)``,
already divided by the per-axis weight sums (the weight sum of a product window on a product grid is the product
of per-axis sums), applied to the ``(k, tiles_z * feat_z, tiles_y * feat_y, tiles_x * feat_x)`` array of maps:
three matrix products instead of resizing and adding every tile at full resolution. The result depends only on
which tiles cover the region, never on how the work was split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tomocam.explain.resize import interpolation_matrix
from tomocam.stitch.window import axis_window


def axis_operator(lo: int, length: int, starts: np.ndarray, tile: int, feat: int, window: str) -> torch.Tensor:
    """Blend operator of one axis: ``(length, t * feat)`` float32, for output voxels ``lo .. lo + length - 1``.

    Row ``x`` holds, for each tile ``i`` starting at ``starts[i]`` and each feature voxel ``f``, the weight
    ``w(x - s_i) * up[x - s_i, f] / sum_j w(x - s_j)``, zero where tile ``i`` does not cover ``x``.

    Raises:
        ValueError: a voxel of the range is covered by none of the tiles.
    """
    w = axis_window(tile, window)  # (tile,)
    up = interpolation_matrix(feat, tile).numpy()  # (tile, feat)
    op = np.zeros((length, len(starts), feat))
    weight_sum = np.zeros(length)
    for i, s in enumerate(int(s) for s in starts):
        a, b = max(s, lo), min(s + tile, lo + length)
        if a < b:
            op[a - lo : b - lo, i] = w[a - s : b - s, None] * up[a - s : b - s]
            weight_sum[a - lo : b - lo] += w[a - s : b - s]
    if (weight_sum <= 0).any():
        raise ValueError(f"voxels {lo}..{lo + length - 1} are not all covered by the given tiles")
    return torch.from_numpy((op / weight_sum[:, None, None]).reshape(length, -1).astype(np.float32))


def stitch_region(
    lo: Sequence[int],
    shape: Sequence[int],
    starts: Sequence[np.ndarray],
    maps: np.ndarray,
    tile: Sequence[int],
    window: str = "cosine",
) -> np.ndarray:
    """Stitch the region ``[lo, lo + shape)`` from the tiles covering it.

    Args:
        lo, shape: the region's first voxel and size, one entry per spatial axis.
        starts: per axis, the start voxels ``(t_d,)`` of the covering tiles (a product grid).
        maps: ``(*t, k, *feat)`` feature-resolution maps of those tiles, C order over the grid.
        tile: the tile size per axis.
        window: blend window kind (:data:`tomocam.stitch.window.WINDOWS`).

    Returns:
        ``(k, *shape)`` float32 stitched maps in score units.
    """
    nd = len(shape)
    grid, k, feat = maps.shape[:nd], maps.shape[nd], maps.shape[nd + 1 :]
    x = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))  # (*t, k, *f)
    order = [nd] + [a for d in range(nd) for a in (d, nd + 1 + d)]  # (k, t0, f0, t1, f1, ...)
    x = x.permute(order).reshape(k, *(t * f for t, f in zip(grid, feat)))  # (k, t0*f0, t1*f1, ...)
    for d in range(nd):
        op = axis_operator(lo[d], shape[d], starts[d], tile[d], feat[d], window)  # (shape[d], t_d * f_d)
        x = torch.movedim(torch.movedim(x, 1 + d, -1) @ op.T, -1, 1 + d)
    return x.contiguous().numpy()
