"""Training datasets cut from tomograms at annotated particles (``tomocam extract``).

- :func:`extract_dataset`: tomograms + particle tables -> a dataset ``tomocam train`` reads
- :class:`ExtractSettings`: box size, voxel size, shifts, background, classes, contrast
- :func:`parse_classes`: ``--classes`` (keep, merge, drop)
"""

from tomocam.extract.run import ExtractSettings, TomogramBoxes, extract_dataset
from tomocam.extract.selection import BACKGROUND, parse_classes, tomogram_name

__all__ = ["BACKGROUND", "ExtractSettings", "TomogramBoxes", "extract_dataset", "parse_classes", "tomogram_name"]
