"""Reading input tomograms lazily, with header checks (see :mod:`tomocam.read.mrc`)."""

from tomocam.read.mrc import Tomogram, check_finite, open_tomogram

__all__ = ["Tomogram", "check_finite", "open_tomogram"]
