"""Explain: all-class Respond-CAM and Grad-CAM (pure torch), resizing, and the paper's metrics."""

from tomocam.explain.cam import METHODS, CamResult, compute_cams, find_layer
from tomocam.explain.resize import resize_maps

__all__ = ["METHODS", "CamResult", "compute_cams", "find_layer", "resize_maps"]
