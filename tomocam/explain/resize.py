"""Resize CAM maps to the input grid so that they overlay the input, keeping score units.

Resizing is separable: along each axis a matrix of linear-interpolation weights (sampled at voxel centres and
clamped at the border, as ``F.interpolate(..., align_corners=False)``) maps ``n_in`` values to ``n_out``. Its
columns are scaled to sum to one, so each input value is spread over the output voxels it covers and every map's
sum, its score contribution, is conserved. For integer upsampling factors this is exactly trilinear (bilinear)
interpolation divided by the volume factor. Stitching (:mod:`tomocam.stitch`) uses the same matrices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def interpolation_matrix(n_in: int, n_out: int) -> Tensor:
    """``(n_out, n_in)`` float64 linear-interpolation weights whose columns sum to one (mass-conserving).

    Columns of input voxels that no output samples (downsampling by 2 or more) stay zero.
    """
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
    lower = src.floor().long().clamp_max(n_in - 1)
    upper = (lower + 1).clamp_max(n_in - 1)
    frac = src - lower
    rows = torch.arange(n_out)
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    weights.index_put_((rows, lower), 1 - frac, accumulate=True)
    weights.index_put_((rows, upper), frac, accumulate=True)
    return weights / weights.sum(0, keepdim=True).clamp_min(1e-12)


def resize_maps(maps: Tensor, size: Sequence[int]) -> Tensor:
    """Resize ``(n, k, *s)`` maps to ``(n, k, *size)`` (bilinear in 2-D, trilinear in 3-D), each sum unchanged.

    Args:
        maps: ``(n, k, h, w)`` or ``(n, k, d, h, w)`` CAM maps in score units.
        size: target spatial shape, same number of axes as the maps.

    Returns:
        ``(n, k, *size)``, float32 (float64 for float64 maps), whose per-map sums equal those of ``maps``
        whenever the target is at least half the source size on every axis.
    """
    size = tuple(int(v) for v in size)
    spatial = tuple(maps.shape[2:])
    if len(size) != len(spatial) or len(size) not in (2, 3):
        raise ValueError(f"cannot resize maps of spatial shape {spatial} to {size}")
    out = maps.double() if maps.dtype == torch.float64 else maps.float()
    for axis, (n_in, n_out) in enumerate(zip(spatial, size)):
        if n_in == n_out:
            continue
        weights = interpolation_matrix(n_in, n_out).to(out)  # (n_out, n_in)
        out = torch.movedim(torch.movedim(out, 2 + axis, -1) @ weights.T, -1, 2 + axis)
    return out.clone() if out is maps else out
