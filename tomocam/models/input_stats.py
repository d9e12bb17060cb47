"""Statistics of a model's inputs, to tell whether a tomogram looks like the data the model was trained on.

Per input (one tile or training box as the model sees it, on its grid), two shape statistics of the voxel values:
skewness (sparse bright particles on a noisy background make it positive, dark ones negative) and excess kurtosis
(how heavy the tails are: crowded or empty tiles, noise level). Both are unchanged by the offset and scale of the
intensities, so by the normalisation and by the tomogram's units. Training stores their 5th, 50th and 95th
percentiles over its fit boxes in the checkpoint's provenance (``"input_stats"``; older checkpoints lack it, and
the check is skipped). A tomogram whose median tile lies outside the training 5-95 % range of either statistic
is far from what the model learnt, and its heatmaps deserve suspicion.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

STATISTICS = ("skewness", "kurtosis")
QUANTILES = (0.05, 0.5, 0.95)


def input_moments(x: ArrayLike) -> np.ndarray:
    """Skewness and excess kurtosis of each sample of ``x`` `(n, ...)` (over all its other axes): `(n, 2)`.

    The population (biased) moments, as ``scipy.stats.skew`` and ``kurtosis`` give them by default; a constant
    sample gives zeros."""
    a = np.asarray(x, dtype=np.float64)
    v = a.reshape(len(a), -1)  # (n, voxels)
    d = v - v.mean(axis=1, keepdims=True)
    var = (d**2).mean(axis=1)
    safe = np.where(var > 0, var, 1.0)
    skew = np.where(var > 0, (d**3).mean(axis=1) / safe**1.5, 0.0)
    kurt = np.where(var > 0, (d**4).mean(axis=1) / safe**2 - 3.0, 0.0)
    return np.stack([skew, kurt], axis=1)


def summarise_inputs(x: Any, max_samples: int = 4096) -> dict[str, Any]:
    """``{"n": ..., "skewness": [q05, q50, q95], "kurtosis": [...]}`` of the samples of ``x`` `(n, ...)` (the
    first ``max_samples``), plain floats for a checkpoint's provenance. ``x`` is anything sliceable (NumPy,
    zarr, torch): only the first samples are read."""
    moments = input_moments(np.asarray(x[:max_samples]))
    q = np.quantile(moments, QUANTILES, axis=0)  # (3, 2)
    return {"n": int(len(moments)), **{s: [round(float(v), 4) for v in q[:, i]] for i, s in enumerate(STATISTICS)}}


def far_from_training(reference: dict[str, Any] | None, moments: np.ndarray) -> str | None:
    """A warning when the median of the tiles' ``moments`` `(n, 2)` lies outside the training 5-95 % range of
    either statistic of ``reference`` (:func:`summarise_inputs` of the training inputs); ``None`` otherwise, or
    when there is no reference or no tile."""
    if not reference or len(moments) == 0 or not all(s in reference for s in STATISTICS):
        return None
    median = np.median(moments, axis=0)
    far = [f"{s} {m:+.2f} (training 5-95 %: {reference[s][0]:+.2f} to {reference[s][2]:+.2f})"
           for s, m in zip(STATISTICS, median) if not reference[s][0] <= m <= reference[s][2]]
    if not far:
        return None
    return ("the tomogram's tiles look unlike the model's training data: median tile " + "; ".join(far)
            + ". Check the voxel size, the contrast (--invert) and the SNR; heatmaps may not mean what they did "
            "in training")


def predictions_collapsed(top_classes: list[tuple[str, int, float]], n_tiles: int, share: float = 0.9,
                          probability: float = 0.9) -> str | None:
    """A warning when one class is predicted for at least ``share`` of the tiles with a probability averaged
    over all tiles of at least ``probability`` (``top_classes``: ``(name, tiles, mean probability)``, most
    tiles first): a model shown data unlike its training set often answers one class, confidently, everywhere."""
    if not top_classes or n_tiles <= 0:
        return None
    name, n, p = top_classes[0]
    if n < share * n_tiles or p < probability:
        return None
    return (f"the model calls {n} of {n_tiles} tiles '{name}' with mean probability {p:.2f}: predictions this "
            "uniform mean either a tomogram of that one class (e.g. empty of particles) or one unlike the training "
            "data (voxel size, contrast, SNR, structures)")
