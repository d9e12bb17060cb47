"""tomocam: Respond-CAM and Grad-CAM heatmaps of 3-D CNNs, for every class, over whole cryo-ET tomograms.

The verbs users call from notebooks and scripts::

    import tomocam
    model, meta = tomocam.load_checkpoint("cnn2.pt")
    result = tomocam.compute_cams(model, x, meta.cam_layer)       # x: (n, 1, d, h, w)
    heat = tomocam.resize_maps(result.maps["respond"], x.shape[2:])  # (n, k, d, h, w), score units
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("tomocam")  # written once, in pyproject.toml
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

# The verbs are imported on first use (PEP 562), so that ``import tomocam`` -- and ``tomocam --help`` -- do not
# load torch; ``tomocam.compute_cams`` works as if imported here.
_VERBS = {
    "CamResult": "tomocam.explain",
    "compute_cams": "tomocam.explain",
    "resize_maps": "tomocam.explain",
    "load_checkpoint": "tomocam.models",
    "register_architecture": "tomocam.models",
    "save_checkpoint": "tomocam.models",
}

if TYPE_CHECKING:
    from tomocam.explain import CamResult, compute_cams, resize_maps
    from tomocam.models import load_checkpoint, register_architecture, save_checkpoint


def __getattr__(name: str) -> Any:
    """The verbs above, and subpackages such as ``tomocam.models``, imported when first used."""
    if name in _VERBS:
        value = getattr(importlib.import_module(_VERBS[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"tomocam.{name}") is not None:
        value = importlib.import_module(f"tomocam.{name}")
    else:
        raise AttributeError(f"module 'tomocam' has no attribute {name!r}")
    globals()[name] = value
    return value

__all__ = [
    "CamResult", "__version__", "compute_cams", "load_checkpoint", "register_architecture", "resize_maps",
    "save_checkpoint",
]
