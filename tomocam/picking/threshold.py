"""A pick threshold chosen from the data: how far a heatmap peak stands out from the peaks of the noise.

Most local maxima of a class heatmap (one per particle radius, over the whole tomogram) are not at particles of
that class: a tomogram holds a few particles per class and many radius-sized regions of noise, background and
other classes. Their values form the bulk of the distribution; particles are the outliers above it. The robust
way to set an outlier threshold is the bulk's median plus ``k`` robust standard deviations, the standard
deviation estimated as 1.4826 x the median absolute deviation (MAD; the factor makes it the standard deviation
for normally distributed values, ``scipy.stats.median_abs_deviation(scale="normal")``). Both statistics ignore
up to half the values, so the particles themselves do not shift the threshold. ``k = 3`` is the usual
three-sigma rule; it was fixed before measuring, not tuned (docs/results.md, "Picks").
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import median_abs_deviation

SIGMAS = 3.0


def robust_threshold(peaks: ArrayLike, sigmas: float = SIGMAS) -> float:
    """``median + sigmas * 1.4826 * MAD`` of the peak values ``peaks`` `(n,)`; ``inf`` (no picks) when empty."""
    values = np.asarray(peaks, dtype=np.float64).ravel()
    if values.size == 0:
        return float("inf")
    return float(np.median(values) + sigmas * median_abs_deviation(values, scale="normal"))
