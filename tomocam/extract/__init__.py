"""Training datasets cut from tomograms at annotated particles (``tomocam extract``).

- :func:`extract_dataset`: tomograms + particle tables -> a dataset ``tomocam train`` reads
  (:func:`plan_extraction`, which checks everything and reads no voxel, then :func:`write_extraction`)
- :class:`ExtractSettings`: box size, voxel size, shifts, background, classes, contrast
- :func:`parse_classes`: ``--classes`` (keep, merge, drop)
"""

from tomocam.extract.run import (
    Extraction,
    ExtractSettings,
    TomogramBoxes,
    extract_dataset,
    plan_extraction,
    write_extraction,
)
from tomocam.extract.selection import BACKGROUND, parse_classes, tomogram_name

__all__ = ["BACKGROUND", "ExtractSettings", "Extraction", "TomogramBoxes", "extract_dataset", "parse_classes",
           "plan_extraction", "tomogram_name", "write_extraction"]
