"""Explain: all-class Respond-CAM and Grad-CAM (pure torch), resizing, and the paper's metrics.

The method names (:mod:`tomocam.explain.methods`) import nothing heavy; the torch code is imported on first use
of one of its names, so the command line can build its choices without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tomocam.explain.methods import AUTOCAST_DTYPES, METHOD_TITLES, METHODS

if TYPE_CHECKING:
    from tomocam.explain.cam import CamResult, compute_cams, find_layer
    from tomocam.explain.resize import resize_maps

_LAZY = {"CamResult": "cam", "compute_cams": "cam", "find_layer": "cam", "resize_maps": "resize"}

__all__ = ["AUTOCAST_DTYPES", "METHODS", "METHOD_TITLES", "CamResult", "compute_cams", "find_layer", "resize_maps"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"tomocam.explain.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'tomocam.explain' has no attribute {name!r}")
