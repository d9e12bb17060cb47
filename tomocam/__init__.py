"""tomocam: Respond-CAM and Grad-CAM heatmaps of 3-D CNNs, for every class, over whole cryo-ET tomograms.

The verbs users call from notebooks and scripts::

    import tomocam
    model, meta = tomocam.load_checkpoint("cnn2.pt")
    result = tomocam.compute_cams(model, x, meta.cam_layer)       # x: (n, 1, d, h, w)
    heat = tomocam.resize_maps(result.maps["respond"], x.shape[2:])  # (n, k, d, h, w), score units
"""

from tomocam.explain import CamResult, compute_cams, resize_maps
from tomocam.models import load_checkpoint, register_architecture, save_checkpoint

__version__ = "0.1.0"

__all__ = [
    "CamResult", "__version__", "compute_cams", "load_checkpoint", "register_architecture", "resize_maps",
    "save_checkpoint",
]
