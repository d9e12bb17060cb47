"""Before a run: do the tomogram's tiles, as the model will see them, look like the model's training inputs?

Reads a few tiles spread over the grid (not the volume), prepares them exactly as phase 1 does
(:func:`tomocam.models.inputs.prepare`: resampled to the model's grid, inverted with ``--invert``, normalised)
and compares their statistics with those the checkpoint recorded at training time
(:mod:`tomocam.models.input_stats`).
"""

from __future__ import annotations

import numpy as np

from tomocam.models.input_stats import far_from_training, input_moments
from tomocam.pipeline.plan import Plan


def sample_inputs(plan: Plan, n: int = 64) -> np.ndarray:
    """Up to ``n`` tiles evenly spread over the plan's grid, as the model sees them: `(m, *model_input)`."""
    import torch

    from tomocam.models.inputs import prepare

    indices = list(np.ndindex(*plan.tile_grid.grid_shape))
    chosen = [indices[i] for i in np.unique(np.linspace(0, len(indices) - 1, min(n, len(indices))).astype(int))]
    volume = plan.tomogram.array()
    tiles = np.stack([np.asarray(volume[tuple(slice(a, a + t) for a, t in zip(plan.tile_grid.tile_start(i),
                                                                                 plan.tile_grid.tile))], np.float32)
                      for i in chosen])  # (m, *tile), read tile by tile
    return prepare(torch.from_numpy(tiles), plan.input_spec)[:, 0].numpy()


def input_drift(plan: Plan, reference: dict | None, n: int = 64) -> str | None:
    """The warning of :func:`tomocam.models.input_stats.far_from_training` for ``n`` tiles of the plan, or
    ``None`` (also when the checkpoint recorded no ``reference``, without reading any tile)."""
    if not reference:
        return None
    return far_from_training(reference, input_moments(sample_inputs(plan, n)))
