"""Blending windows for overlapping tiles: smooth, largest at the tile centre, never zero (so every voxel that a
tile covers gets a positive weight, and a voxel covered by one tile only gets exactly that tile's value)."""

from __future__ import annotations

import numpy as np

WINDOWS = ("cosine", "gaussian", "flat")


def axis_window(n: int, kind: str) -> np.ndarray:
    """1-D float64 weights of length ``n`` sampled at voxel centres ``(i + 0.5) / n``; a tile's window is the
    outer product of its axes' windows, which is what lets stitching run axis by axis."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    if kind == "cosine":
        return np.sin(np.pi * t)  # half a sine period: sin(pi / 2n) > 0 at the edges
    if kind == "gaussian":
        return np.exp(-0.5 * ((t - 0.5) / 0.25) ** 2)  # sigma = a quarter tile: exp(-2) at the edges
    if kind == "flat":
        return np.ones(n)
    raise ValueError(f"unknown window '{kind}'; expected one of {', '.join(WINDOWS)}")
