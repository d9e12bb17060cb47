"""Reading input tomograms lazily, with header checks: MRC (:mod:`.mrc`), OME-Zarr (:mod:`.omezarr`), copick
projects (:mod:`.copick`); :func:`open_tomogram` chooses the reader (:mod:`.source`) and returns a
:class:`Tomogram` (:mod:`.tomogram`) whatever the format."""

from tomocam.read.copick import CopickProject
from tomocam.read.source import locate_tomogram, open_tomogram
from tomocam.read.tomogram import Tomogram, check_finite

__all__ = ["CopickProject", "Tomogram", "check_finite", "locate_tomogram", "open_tomogram"]
