"""How well picks match a known particle list: one-to-one matching within a tolerance, precision and recall.

Pure functions on coordinate arrays. :func:`match_points` pairs picks with true particles at most ``tolerance``
apart, one to one, with the largest number of pairs and, among those, the smallest total distance
(``linear_sum_assignment`` on each connected group of nearby points, so large tables stay cheap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


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
    pairs: list[tuple[int, int]] = []
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
    pred_names = np.asarray(pred_class, dtype=object)
    truth_names = np.asarray(truth_class, dtype=object)
    names = sorted(set(pred_names.tolist()) | set(truth_names.tolist()))
    result: dict[str, PickScore] = {}
    for name in names:
        p, t = pred[pred_names == name], truth[truth_names == name]
        tp = len(match_points(p, t, tolerance))
        result[name] = PickScore(tp, len(p) - tp, len(t) - tp)
    overall = PickScore(
        sum(s.true_positives for s in result.values()),
        sum(s.false_positives for s in result.values()),
        sum(s.false_negatives for s in result.values()),
    )
    return result, overall
