"""Before a run: do the tomogram's tiles, as the model will see them, look like the model's training inputs?

Reads a few tiles spread over the grid (not the volume), prepares them as phase 1 does up to normalisation
(resampled to the model's grid, inverted with ``--invert``; the statistics compared do not depend on the
normalisation) and compares their statistics with those the checkpoint recorded at training time
(:mod:`tomocam.models.input_stats`).
"""

from __future__ import annotations

import numpy as np

from tomocam.models.input_stats import far_from_training, input_moments
from tomocam.pipeline.plan import Plan
from tomocam.tile.cut import cut_tiles


def sample_inputs(plan: Plan, n: int = 64) -> np.ndarray:
    """Up to ``n`` tiles evenly spread over the plan's grid, as the model sees them: `(m, *model_input)`."""
    import torch

    from tomocam.pipeline.phase1 import resample_tiles

    indices = list(np.ndindex(*plan.grid.grid_shape))
    chosen = [indices[i] for i in np.unique(np.linspace(0, len(indices) - 1, min(n, len(indices))).astype(int))]
    tiles = cut_tiles(plan.tomogram.array(), (0,) * len(plan.grid.tile), plan.grid, chosen)  # (m, *tile)
    x = resample_tiles(torch.from_numpy(tiles.astype(np.float32)).unsqueeze(1), plan.model_input)[:, 0]
    return (-x if plan.invert else x).numpy()


def input_drift(plan: Plan, reference: dict | None, n: int = 64) -> str | None:
    """The warning of :func:`tomocam.models.input_stats.far_from_training` for ``n`` tiles of the plan, or
    ``None`` (also when the checkpoint recorded no ``reference``, without reading any tile)."""
    if not reference:
        return None
    return far_from_training(reference, input_moments(sample_inputs(plan, n)))
