"""The input normalisation a model expects, shared by training and explaining.

A checkpoint records the method by name, so that tiles cut from a tomogram are normalised exactly as the training
subtomograms were.
"""

from __future__ import annotations

import torch
from torch import Tensor

NORMALISATIONS: tuple[str, ...] = ("zscore", "raw")


def normalise(x: Tensor, method: str) -> Tensor:
    """Normalise each sample of ``(n, c, *s)`` independently.

    ``"zscore"``: zero mean and unit standard deviation per sample (over channels and space); a constant sample
    becomes zeros. ``"raw"``: returned unchanged (the authors fed their CNNs the simulated densities as they are).
    """
    if method == "raw":
        return x
    if method != "zscore":
        raise ValueError(f"unknown normalisation {method!r}; expected one of {NORMALISATIONS}")
    axes = tuple(range(1, x.dim()))
    std, mean = torch.std_mean(x, axes, correction=0, keepdim=True)  # one pass for both
    return (x - mean) / std.clamp_min(1e-6)
