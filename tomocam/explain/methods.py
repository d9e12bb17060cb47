"""The names of what :func:`tomocam.compute_cams` computes: CAM methods, their titles, autocast precisions.

Plain data, no torch: the command line builds its choices from these, and ``tomocam --help`` does not load torch.
"""

from __future__ import annotations

#: CAM methods, by the key used in the API, the CLI (``-m``) and the store (one group per method).
METHODS: tuple[str, ...] = ("respond", "gradcam")
#: How figures and tables name each method.
METHOD_TITLES: dict[str, str] = {"respond": "Respond-CAM", "gradcam": "Grad-CAM"}
#: Mixed-precision forward passes (``--autocast``): option value -> name of the torch dtype.
AUTOCAST_DTYPES: dict[str, str] = {"bf16": "bfloat16", "fp16": "float16"}
