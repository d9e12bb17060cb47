"""Resize CAM maps to the input grid so that they overlay the input, keeping score units.

Interpolation spreads each feature-resolution value over ``prod(size / s)`` input voxels; dividing by that factor
keeps every map's sum (its score contribution, the sum-to-score property) unchanged. Interpolation replicates
the border, so the small residual left in the sum is spread uniformly over the map.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor
from torch.nn import functional as F


def resize_maps(maps: Tensor, size: Sequence[int]) -> Tensor:
    """Resize ``(n, k, *s)`` maps to ``(n, k, *size)`` (bilinear in 2-D, trilinear in 3-D), each sum unchanged.

    Args:
        maps: ``(n, k, h, w)`` or ``(n, k, d, h, w)`` CAM maps in score units.
        size: target spatial shape, same number of axes as the maps.

    Returns:
        float32 tensor ``(n, k, *size)`` whose per-map sums equal those of ``maps``.
    """
    size = tuple(int(v) for v in size)
    spatial = maps.shape[2:]
    if len(size) != len(spatial) or len(size) not in (2, 3):
        raise ValueError(f"cannot resize maps of spatial shape {tuple(spatial)} to {size}")
    maps = maps.float()
    if tuple(spatial) == size:
        return maps.clone()
    mode = "bilinear" if len(size) == 2 else "trilinear"
    resized = F.interpolate(maps, size=size, mode=mode, align_corners=False)  # (n, k, *size)
    axes = tuple(range(2, maps.dim()))
    voxels = resized[0, 0].numel()
    resized = resized * (maps[0, 0].numel() / voxels)  # spread each value over the voxels it now covers
    # Edge voxels are replicated rather than interpolated, which leaves a small residual in the sum: spread it
    # uniformly, which keeps the sum exact without amplifying anything (unlike a multiplicative rescale).
    residual = maps.sum(axes, keepdim=True) - resized.sum(axes, keepdim=True)
    return resized + residual / voxels
