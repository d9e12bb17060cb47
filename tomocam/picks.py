"""Particle picks from heatmaps, and how well they match a known particle list.

Pure functions on arrays. A pick is a local maximum of a class heatmap above a threshold, kept only if no
higher pick of the same class lies within the particle radius (non-maximum suppression). Heatmaps of whole
tomograms do not fit in memory, so :func:`find_peaks` walks the array block by block, each block read with a
halo of one radius so that the local-maximum test at a block edge sees the same neighbours as it would on the
whole volume; the result does not depend on the block size. One code path serves 2-D and 3-D arrays.

Matching (:func:`match_points`) pairs picks with true particles at most ``tolerance`` apart, one to one, with
the largest number of pairs and, among those, the smallest total distance (``linear_sum_assignment`` on each
connected group of nearby points, so large tables stay cheap).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


class ArrayLike(Protocol):
    """What :func:`find_peaks` reads from: a numpy array, a zarr array or an mrcfile memory map."""

    shape: tuple[int, ...]

    def __getitem__(self, key: tuple[slice, ...]) -> NDArray: ...


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


def blocks(shape: Sequence[int], block: Sequence[int]) -> list[tuple[slice, ...]]:
    """The slices of a regular grid of blocks covering ``shape`` (the last block of each axis may be smaller)."""
    ranges = [range(0, s, b) for s, b in zip(shape, block)]
    return [
        tuple(slice(o, min(o + b, s)) for o, b, s in zip(origin, block, shape))
        for origin in itertools.product(*ranges)
    ]


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


def _points(points: NDArray) -> NDArray[np.float64]:
    """``points`` as a float64 `(n, ndim)` array; an empty input of any shape becomes `(0, 0)`."""
    arr = np.asarray(points, dtype=np.float64)
    return arr.reshape(0, 0) if arr.size == 0 else arr.reshape(len(arr), -1)


def match_points(pred: NDArray, truth: NDArray, tolerance: float) -> NDArray[np.int64]:
    """One-to-one pairs ``(i_pred, i_truth)`` at most ``tolerance`` apart: as many pairs as possible, then
    the smallest total distance. ``pred``: `(n, ndim)`, ``truth``: `(m, ndim)`; returns `(p, 2)`."""
    pred, truth = _points(pred), _points(truth)
    if len(pred) == 0 or len(truth) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    near = cKDTree(pred).sparse_distance_matrix(cKDTree(truth), tolerance, output_type="ndarray")
    rows, cols, dist = near["i"].astype(np.int64), near["j"].astype(np.int64), near["v"]  # zeros kept
    n, m = len(pred), len(truth)
    # Connected groups of the bipartite "within tolerance" graph are matched independently.
    graph = coo_matrix((np.ones(len(rows)), (rows, cols + n)), shape=(n + m, n + m))
    _, label = connected_components(graph, directed=False)
    pairs = []
    big = tolerance * (n + m + 1) + 1.0  # any real pair is cheaper than giving up one: cardinality first
    if len(rows) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    for group in np.unique(label[rows]):
        sel = label[rows] == group
        r_ids, r_inv = np.unique(rows[sel], return_inverse=True)
        c_ids, c_inv = np.unique(cols[sel], return_inverse=True)
        cost = np.full((len(r_ids), len(c_ids)), big)
        cost[r_inv, c_inv] = dist[sel]
        ri, ci = linear_sum_assignment(cost)
        ok = cost[ri, ci] < big
        pairs.extend(zip(r_ids[ri[ok]], c_ids[ci[ok]]))
    pairs.sort()
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


@dataclass(frozen=True)
class PickScore:
    """Counts and rates of one comparison of picks with the truth."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        """Matched picks / picks (0 when there are no picks)."""
        n = self.true_positives + self.false_positives
        return self.true_positives / n if n else 0.0

    @property
    def recall(self) -> float:
        """Matched particles / particles (0 when there are no particles)."""
        n = self.true_positives + self.false_negatives
        return self.true_positives / n if n else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (0 when both are 0)."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score_picks(
    pred: NDArray,
    pred_class: Sequence[str],
    truth: NDArray,
    truth_class: Sequence[str],
    tolerance: float,
) -> tuple[dict[str, PickScore], PickScore]:
    """Precision/recall counts per class and overall, matching only within a class.

    ``pred``: `(n, ndim)`, ``truth``: `(m, ndim)`, in the same units as ``tolerance``. Returns a score per
    class present in either table, and the overall score summing their counts (micro average).
    """
    pred, truth = _points(pred), _points(truth)
    pred_class = np.asarray(pred_class, dtype=object)
    truth_class = np.asarray(truth_class, dtype=object)
    names = sorted(set(pred_class.tolist()) | set(truth_class.tolist()))
    result: dict[str, PickScore] = {}
    for name in names:
        p, t = pred[pred_class == name], truth[truth_class == name]
        tp = len(match_points(p, t, tolerance))
        result[name] = PickScore(tp, len(p) - tp, len(t) - tp)
    overall = PickScore(
        sum(s.true_positives for s in result.values()),
        sum(s.false_positives for s in result.values()),
        sum(s.false_negatives for s in result.values()),
    )
    return result, overall
