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

The operator's rows are the field's values at chosen voxels, so the same maths samples the field on any product
of voxel positions: :func:`stitch_region` on every voxel of a box, :func:`stitch_samples` on a coarser grid (the
store's native level 0). A sample equals the full-grid field at its voxel exactly, not an interpolation of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from tomocam.explain.resize import interpolation_matrix
from tomocam.stitch.window import axis_window


def axis_operator(positions: np.ndarray, starts: np.ndarray, tile: int, feat: int, window: str) -> torch.Tensor:
    """Blend operator of one axis: ``(len(positions), t * feat)`` float32, one row per output voxel index.

    Row ``r`` (voxel ``x = positions[r]``) holds, for each tile ``i`` starting at ``starts[i]`` and each feature
    voxel ``f``, the weight ``w(x - s_i) * up[x - s_i, f] / sum_j w(x - s_j)``, zero where tile ``i`` does not
    cover ``x``.

    Raises:
        ValueError: a voxel of ``positions`` is covered by none of the tiles.
    """
    x = np.asarray(positions, dtype=np.int64)  # (n,)
    w = axis_window(tile, window)  # (tile,)
    up = interpolation_matrix(feat, tile).numpy()  # (tile, feat)
    offset = x[:, None] - np.asarray(starts, dtype=np.int64)[None, :]  # (n, t): voxel x inside tile i
    inside = (offset >= 0) & (offset < tile)
    clipped = np.clip(offset, 0, tile - 1)
    weight = np.where(inside, w[clipped], 0.0)  # (n, t)
    weight_sum = weight.sum(axis=1)
    if (weight_sum <= 0).any():
        bad = x[weight_sum <= 0]
        raise ValueError(f"voxels {bad.min()}..{bad.max()} are not all covered by the given tiles")
    op = weight[:, :, None] * up[clipped] / weight_sum[:, None, None]  # (n, t, feat)
    return torch.from_numpy(op.reshape(len(x), -1).astype(np.float32))


#: Bytes of tile maps :func:`stitch_samples` blends at once (whole classes, at least one): :func:`blend` copies
#: them into its own order and its products' intermediates are of their size, so a larger set is blended class
#: group by class group, and a phase-2 task's memory is its maps plus this much, not twice or three times them.
BLEND_BYTES = 8 << 20


def stitch_samples(
    positions: Sequence[np.ndarray],
    starts: Sequence[np.ndarray],
    maps: np.ndarray,
    tile: Sequence[int],
    window: str = "cosine",
    device: str = "cpu",
) -> torch.Tensor:
    """The stitched field at the voxels ``positions[0] x positions[1] x ...`` (a product grid of voxel indices),
    computed on ``device`` (the matrix products are the cost: a GPU makes them nearly free).

    Args:
        positions: per spatial axis, the voxel indices ``(n_d,)`` to sample.
        starts: per axis, the start voxels ``(t_d,)`` of the tiles covering those voxels (a product grid).
        maps: ``(*t, k, *feat)`` feature-resolution maps of those tiles, C order over the grid.
        tile: the tile size per axis.
        window: blend window kind (:data:`tomocam.stitch.window.WINDOWS`).
        device: where to compute (the result stays there).

    Returns:
        ``(k, *n)`` float32 tensor of stitched values in score units, on ``device``.
    """
    nd = len(positions)
    k, feat = maps.shape[nd], maps.shape[nd + 1 :]
    x = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))  # (*t, k, *f), on the host
    ops = [axis_operator(positions[d], starts[d], tile[d], feat[d], window).to(device) for d in range(nd)]
    per = max(1, BLEND_BYTES // max(1, x.nbytes // max(1, k)))  # classes blended at once
    if per >= k:
        return blend(x.to(device), ops)
    out = torch.empty((k, *(len(p) for p in positions)), device=device)
    for a in range(0, k, per):
        out[a : a + per] = blend(x[(slice(None),) * nd + (slice(a, a + per),)].to(device), ops)
    return out


def blend(maps: torch.Tensor, ops: Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply one blend operator per axis to tile maps: ``(*t, k, *feat)`` -> ``(k, *n)`` float32 (same device).

    ``ops[d]`` is ``(n_d, t_d * feat_d)``, as :func:`axis_operator` gives for the tiles of ``maps``. Each axis is
    one plain matrix product on a contiguous array, ``(L, C) @ (p, C, s)`` (``(p, C) @ (C, L)`` for the last axis),
    so no product needs a transposed copy; the axes that shrink the array most go first, and among axes that
    shrink or grow it alike the later ones: an axis's product is a batch of matrices ``s`` wide (the axes after
    it), which run faster wide, and a later axis done first has widened them where the operators grow the array
    (docs/architecture.md, "Design decisions").
    """
    nd = len(ops)
    grid, k, feat = maps.shape[:nd], maps.shape[nd], maps.shape[nd + 1 :]
    order = [nd] + [a for d in range(nd) for a in (d, nd + 1 + d)]  # (k, t0, f0, t1, f1, ...)
    shape = [k, *(t * f for t, f in zip(grid, feat))]
    x = maps.permute(order).reshape(shape)  # (k, t0*f0, t1*f1, ...)
    for d in sorted(range(nd), key=lambda d: (ops[d].shape[0] / ops[d].shape[1], -d)):
        op = ops[d]  # (n_d, t_d * f_d)
        p, c, s = math.prod(shape[: 1 + d]), shape[1 + d], math.prod(shape[2 + d :])
        x = x.reshape(p, c) @ op.T if s == 1 else op @ x.reshape(p, c, s)  # axis d now (n_d,)
        shape[1 + d] = op.shape[0]
    return x.reshape(shape)


def stitch_region(
    lo: Sequence[int],
    shape: Sequence[int],
    starts: Sequence[np.ndarray],
    maps: np.ndarray,
    tile: Sequence[int],
    window: str = "cosine",
) -> np.ndarray:
    """Stitch every voxel of the region ``[lo, lo + shape)`` from the tiles covering it.

    Args:
        lo: the region's first voxel, one entry per spatial axis.
        shape: the region's size, one entry per spatial axis.
        starts: as for :func:`stitch_samples`.
        maps: as for :func:`stitch_samples`.
        tile: as for :func:`stitch_samples`.
        window: as for :func:`stitch_samples`.

    Returns:
        ``(k, *shape)`` float32 stitched maps in score units.
    """
    positions = [np.arange(a, a + n) for a, n in zip(lo, shape)]
    return stitch_samples(positions, starts, maps, tile, window).numpy()
