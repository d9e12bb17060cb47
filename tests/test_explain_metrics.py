"""The paper's Table 1 metrics on hand-made numbers."""

from __future__ import annotations

import numpy as np
import torch

from tomocam.explain.metrics import kendall_tau, sum_to_score_l1


def test_l1_is_mean_absolute_gap_between_map_sums_and_scores():
    maps = torch.zeros(2, 3, 2, 2)
    maps[0, :, 0, 0] = torch.tensor([1.0, 2.0, 3.0])
    maps[1, :, 1, 1] = torch.tensor([0.0, 0.0, 0.0])
    logits = torch.tensor([[1.0, 1.0, 5.0], [3.0, -3.0, 0.0]])
    np.testing.assert_allclose(sum_to_score_l1(maps, logits), [(0 + 1 + 2) / 3, 2.0])


def test_kendall_tau_counts_concordant_pairs():
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    same = logits.reshape(1, 4, 1, 1) * 10
    reversed_ = -same
    one_swap = torch.tensor([1.0, 3.0, 2.0, 4.0]).reshape(1, 4, 1, 1)
    assert kendall_tau(same, logits)[0] == 1.0
    assert kendall_tau(reversed_, logits)[0] == -1.0
    np.testing.assert_allclose(kendall_tau(one_swap, logits)[0], (5 - 1) / 6)
