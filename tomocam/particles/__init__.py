"""Particle tables: one in-memory form, read from and written to the field's formats.

- :mod:`tomocam.particles.table`: the DataFrame every command shares (``tomogram, class, x, y, z, score`` in
  angstrom, tomocam's frame), :class:`TomogramInfo`, conversions to and from voxels and orientations.
- :mod:`tomocam.particles.files`: :func:`read_particles` and :func:`write_particles`, the format chosen by extension.
- One module per format: :mod:`~tomocam.particles.star` (RELION 5 and RELION 3 / Warp),
  :mod:`~tomocam.particles.tomocam_csv`, :mod:`~tomocam.particles.copick_json` (copick picks),
  :mod:`~tomocam.particles.portal_ndjson` (CZ cryoET data portal points).
"""

from tomocam.particles.files import FORMATS, read_particles, write_particles
from tomocam.particles.table import (
    ANGLES,
    COLUMNS,
    TomogramInfo,
    check_classes,
    from_voxels,
    particle_table,
    to_voxels,
)

__all__ = ["ANGLES", "COLUMNS", "FORMATS", "TomogramInfo", "check_classes", "from_voxels", "particle_table",
           "read_particles", "to_voxels", "write_particles"]
