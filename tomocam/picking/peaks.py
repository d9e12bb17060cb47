"""Peaks of a heatmap: local maxima above a threshold, one per particle radius.

Pure functions on arrays. A pick is a local maximum of a class heatmap above a threshold, kept only if no
higher pick of the same class lies within the particle radius (non-maximum suppression). Heatmaps of whole
tomograms do not fit in memory, so :func:`find_peaks` walks the array block by block, each block read with a
halo of one radius so that the local-maximum test at a block edge sees the same neighbours as it would on the
whole volume; the result does not depend on the block size. One code path serves 2-D and 3-D arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial import cKDTree

from tomocam.arrays import ArrayLike, blocks


def ball(radius: float, ndim: int) -> NDArray[np.bool_]:
    """Boolean footprint of the points within ``radius`` of the centre: shape ``(2r+1,) * ndim``, r = floor(radius)."""
    r = int(math.floor(radius))
    grid = np.indices((2 * r + 1,) * ndim) - r  # (ndim, 2r+1, ...)
    return (grid**2).sum(axis=0) <= radius**2


def local_maxima(
    volume: NDArray, threshold: float, radius: float, core: tuple[slice, ...] | None = None
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Voxels that are the maximum of their radius-ball neighbourhood and strictly above ``threshold``.

    ``volume``: `(d, h, w)` or `(h, w)`. Outside the array counts as -inf, so edge voxels can be peaks.
    ``core``: only maxima inside these slices are returned (the rest of ``volume`` is halo).
    Returns coordinates `(n, ndim)` relative to ``volume`` and their values `(n,)`. Flat tops give one
    candidate per voxel of the plateau; :func:`suppress` keeps one of them.

    Fast for large radii: a separable maximum filter over the cube inscribed in the ball (O(size) per voxel
    along each axis) finds candidates, a superset of the ball maxima; the exact ball test then runs on the
    candidates only.
    """
    vol = np.asarray(volume, dtype=np.float32)
    ndim = vol.ndim
    half = int(math.floor(radius / math.sqrt(ndim)))  # half-width of the cube inside the ball
    cube = ndimage.maximum_filter(vol, size=2 * half + 1, mode="constant", cval=-np.inf)
    mask = (vol == cube) & (vol > threshold)
    if core is not None:
        inside = np.zeros_like(mask)
        inside[core] = True
        mask &= inside
    coords = np.argwhere(mask).astype(np.int64)  # (n, ndim)
    r = int(math.floor(radius))
    offsets = np.argwhere(ball(radius, ndim)) - r  # (m, ndim)
    padded = np.pad(vol, r, mode="constant", constant_values=-np.inf)
    keep = np.ones(len(coords), dtype=bool)
    batch = max(1, 2**22 // len(offsets))
    for start in range(0, len(coords), batch):
        c = coords[start : start + batch] + r  # (b, ndim) in padded coordinates
        around = padded[tuple((c[:, None, :] + offsets[None]).transpose(2, 0, 1))]  # (b, m)
        keep[start : start + batch] = (around <= padded[tuple(c.T)][:, None]).all(axis=1)
    coords = coords[keep]
    return coords, vol[tuple(coords.T)]


def suppress(coords: NDArray, scores: NDArray, radius: float) -> NDArray[np.int64]:
    """Greedy non-maximum suppression: indices of the kept points, highest score first.

    Points are visited by decreasing score (ties by coordinate, so the result is deterministic); a point is
    kept unless a kept point lies within ``radius`` of it. ``coords``: `(n, ndim)`, ``scores``: `(n,)`.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((*coords.T[::-1], -np.asarray(scores, dtype=np.float64)))
    tree = cKDTree(coords)
    removed = np.zeros(n, dtype=bool)
    kept = []
    for i in order:
        if removed[i]:
            continue
        kept.append(i)
        removed[tree.query_ball_point(coords[i], r=radius)] = True
    return np.asarray(kept, dtype=np.int64)


def find_peaks(
    volume: ArrayLike, threshold: float, radius: float, block: Sequence[int] | None = None
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Picks of one heatmap: local maxima above ``threshold``, non-maximum suppressed at ``radius`` voxels.

    ``volume``: `(d, h, w)` or `(h, w)` array-like, read one block (plus a halo of ``ceil(radius)``) at a
    time; ``block`` defaults to 64 voxels per axis. Returns voxel coordinates `(n, ndim)` in array order
    (z, y, x) and scores `(n,)`, highest score first. Identical for any block size.
    """
    if radius <= 0:
        raise ValueError(f"particle radius must be > 0 voxels, found {radius}")
    shape = tuple(volume.shape)
    block = tuple(block) if block is not None else (64,) * len(shape)
    halo = int(math.ceil(radius))
    found_coords, found_scores = [], []
    for core in blocks(shape, block):
        outer = tuple(slice(max(c.start - halo, 0), min(c.stop + halo, s)) for c, s in zip(core, shape))
        inner = tuple(slice(c.start - o.start, c.stop - o.start) for c, o in zip(core, outer))
        coords, scores = local_maxima(np.asarray(volume[outer]), threshold, radius, inner)
        found_coords.append(coords + np.array([o.start for o in outer], dtype=np.int64))
        found_scores.append(scores)
    coords = np.concatenate(found_coords) if found_coords else np.zeros((0, len(shape)), np.int64)
    scores = np.concatenate(found_scores) if found_scores else np.zeros(0, np.float32)
    keep = suppress(coords, scores, radius)
    return coords[keep], scores[keep]
