"""The input normalisation a model expects, shared by training and explaining.

A checkpoint records the method by name, so that tiles cut from a tomogram are normalised exactly as the training
subtomograms were.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NORMALISATIONS: tuple[str, ...] = ("zscore", "raw")


def normalise(x: Tensor, method: str) -> Tensor:
    """Normalise each sample of ``(n, c, *s)`` independently; ``x`` is left as it is.

    ``"zscore"``: zero mean and unit standard deviation per sample (over channels and space); a constant sample
    becomes zeros. ``"raw"``: returned unchanged (the authors fed their CNNs the simulated densities as they are).
    """
    return _normalise_into(x, method, None)


def normalise_(x: Tensor, method: str) -> Tensor:
    """:func:`normalise` in place: ``x`` (a buffer the caller owns, e.g. a batch of freshly cut tiles) becomes the
    normalised samples, with no temporary the size of ``x``."""
    return _normalise_into(x, method, x)


def _normalise_into(x: Tensor, method: str, out: Tensor | None) -> Tensor:
    """``normalise(x, method)`` written into ``out`` (``x`` itself for in place, ``None`` for a new tensor).

    z-score in two passes over the data: the mean, then the root mean square of the centred values, which is
    exact for any offset (a one-pass ``E[x^2] - E[x]^2`` loses every digit when the mean dwarfs the spread) and
    reads the data faster than Welford's update (``torch.std_mean``).
    """
    if method == "raw":
        return x
    if method != "zscore":
        raise ValueError(f"unknown normalisation {method!r}; expected one of {NORMALISATIONS}")
    axes = tuple(range(1, x.dim()))
    mean = x.mean(axes, keepdim=True)  # (n, 1, ...)
    centred = torch.sub(x, mean) if out is None else torch.sub(x, mean, out=out)
    rms = torch.linalg.vector_norm(centred, dim=axes, keepdim=True) / math.sqrt(math.prod(x.shape[1:]))
    return centred.div_(rms.clamp_min(1e-6))
