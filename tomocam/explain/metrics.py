"""The paper's sum-to-score metrics (Zhao et al. 2018, Table 1, eq. 4-5), per sample.

- L1 error: ``mean_c |sum(L^(c)) - y^(c)|`` over the classes.
- Kendall's tau between the class orderings by score ``y`` and by map sum ``sum(L)`` (``scipy.stats.kendalltau``).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau
from torch import Tensor


def map_sums(maps: Tensor) -> np.ndarray:
    """Per-class map sums ``(n, k)`` (float64) of ``(n, k, *s)`` maps."""
    return maps.detach().double().flatten(2).sum(-1).cpu().numpy()


def sum_to_score_l1(maps: Tensor, logits: Tensor) -> np.ndarray:
    """L1 error per sample ``(n,)``: mean over classes of ``|sum(map) - score|``.

    Args:
        maps: ``(n, k, *s)`` CAM maps in score units.
        logits: ``(n, k)`` the scores the maps explain.
    """
    scores = logits.detach().double().cpu().numpy()
    return np.abs(map_sums(maps) - scores).mean(axis=1)


def kendall_tau(maps: Tensor, logits: Tensor) -> np.ndarray:
    """Kendall's tau per sample ``(n,)`` between class scores and class map sums (needs ``k >= 2``)."""
    sums = map_sums(maps)
    scores = logits.detach().double().cpu().numpy()
    return np.array([kendalltau(s, y).statistic for s, y in zip(sums, scores)])
