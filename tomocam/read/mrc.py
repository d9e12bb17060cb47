"""Open an MRC tomogram lazily and check its header.

The voxels are never loaded as a whole: :meth:`Tomogram.array` returns a read-only ``numpy.memmap`` view
(``mrcfile.mmap``, strict mode) reordered to ``(z, y, x)`` without copying. Checks that need the header only
(dimensionality, axis order, mode, voxel size, file length) happen in :func:`open_mrc`; the NaN/Inf check
needs the voxels and is done block by block by the pipeline with :func:`tomocam.read.check_finite`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tomocam.errors import InputError
from tomocam.read.tomogram import Tomogram, checked_voxel_size

#: MRC modes tomocam reads: 0 int8, 1 int16, 2 float32, 6 uint16, 12 float16.
SUPPORTED_MODES: dict[int, str] = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}


def memmap(path: str, axes: tuple[int, ...]) -> np.ndarray:
    """The voxels of MRC file ``path`` as a read-only ``numpy.memmap`` view in ``(z, y, x)`` order (no copy)."""
    import mrcfile

    mrc = mrcfile.mmap(path, mode="r", permissive=False)
    return mrc.data.transpose(axes)


def open_mrc(path: str | Path, voxel_size: float | None = None) -> Tomogram:
    """Open ``path`` as a 3-D MRC tomogram and check its header.

    ``voxel_size`` (angstrom, isotropic) overrides the header's, for files whose header is unset or wrong.
    Raises :class:`InputError` for a missing file, a file that is not an MRC, a truncated file, a 2-D image or
    image stack, an unsupported mode, an invalid axis order, or an unusable voxel size without an override.
    """
    import mrcfile

    path = Path(path)
    if not path.is_file():
        raise InputError(f"tomogram '{path}' does not exist or is not a file")
    try:
        mrc = mrcfile.mmap(path, mode="r", permissive=False)
    except (ValueError, OSError) as err:
        reason = str(err).split("\n")[0]
        if "length" in reason or "size" in reason:
            reason = f"the file is shorter than its header says (truncated?): {reason}"
        raise InputError(f"tomogram '{path}' cannot be read as an MRC file: {reason}") from None
    with mrc:
        header = mrc.header
        mode = int(header.mode)
        if mode not in SUPPORTED_MODES:
            raise InputError(
                f"tomogram '{path}' has MRC mode {mode}; expected one of "
                + ", ".join(f"{m} ({n})" for m, n in SUPPORTED_MODES.items())
            )
        if mrc.data.ndim != 3 or not mrc.is_volume():
            raise InputError(
                f"tomogram '{path}' is not a 3-D volume: found data of shape {tuple(mrc.data.shape)}"
                + (" marked as an image stack" if mrc.data.ndim == 3 else "")
            )
        axes = _axis_permutation(path, (int(header.mapc), int(header.mapr), int(header.maps)))
        shape = tuple(int(mrc.data.shape[a]) for a in axes)
        header_size = (float(mrc.voxel_size.z), float(mrc.voxel_size.y), float(mrc.voxel_size.x))
        dtype = str(mrc.data.dtype.newbyteorder("="))
    size = checked_voxel_size(str(path), header_size, voxel_size, "header")
    return Tomogram(path=str(path.resolve()), shape=shape, dtype=dtype, voxel_size=size, axes=axes)


def _axis_permutation(path: Path, mapcrs: tuple[int, int, int]) -> tuple[int, int, int]:
    """Permutation taking the file array ``(sections, rows, columns)`` to ``(z, y, x)``.

    ``mapcrs = (mapc, mapr, maps)`` says which axis (1 = x, 2 = y, 3 = z) runs along columns, rows and sections.
    """
    if sorted(mapcrs) != [1, 2, 3]:
        raise InputError(
            f"tomogram '{path}' has an invalid axis order mapc/mapr/maps = {mapcrs}; expected a permutation of 1, 2, 3"
        )
    labels = (mapcrs[2], mapcrs[1], mapcrs[0])  # the axis label of array axes 0 (sections), 1 (rows), 2 (columns)
    return (labels.index(3), labels.index(2), labels.index(1))
