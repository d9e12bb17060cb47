"""Open an MRC tomogram lazily and check its header.

The voxels are never loaded as a whole: :meth:`Tomogram.array` returns a read-only ``numpy.memmap`` view
(``mrcfile.mmap``, strict mode) reordered to ``(z, y, x)`` without copying. Checks that need the header only
(dimensionality, axis order, mode, voxel size, file length) happen in :func:`open_tomogram`; the NaN/Inf check
needs the voxels and is done block by block by the pipeline with :func:`check_finite`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomocam.errors import InputError

#: MRC modes tomocam reads: 0 int8, 1 int16, 2 float32, 6 uint16, 12 float16.
SUPPORTED_MODES: dict[int, str] = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}

#: Voxel sizes outside this range (angstrom) are taken as unset headers, not as real sampling.
PLAUSIBLE_VOXEL_SIZE: tuple[float, float] = (0.1, 1000.0)


@dataclass(frozen=True)
class Tomogram:
    """A checked MRC tomogram: what the pipeline needs to read it anywhere (picklable, no open file).

    ``shape`` and ``voxel_size`` are in ``(z, y, x)`` order; ``axes`` is the permutation that takes the file's
    ``(sections, rows, columns)`` array to ``(z, y, x)``.
    """

    path: str
    shape: tuple[int, ...]
    dtype: str
    voxel_size: tuple[float, float, float]
    axes: tuple[int, int, int] = (0, 1, 2)

    def array(self) -> np.ndarray:
        """The voxels as a lazy read-only ``(z, y, x)`` memory map (cached per process)."""
        return _memmap(self.path, self.axes)


@functools.lru_cache(maxsize=8)
def _memmap(path: str, axes: tuple[int, int, int]) -> np.ndarray:
    import mrcfile

    mrc = mrcfile.mmap(path, mode="r", permissive=False)
    return mrc.data.transpose(axes)


def open_tomogram(path: str | Path, voxel_size: float | None = None) -> Tomogram:
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
    if voxel_size is not None:
        if not (PLAUSIBLE_VOXEL_SIZE[0] <= voxel_size <= PLAUSIBLE_VOXEL_SIZE[1]):
            raise InputError(
                f"--voxel-size {voxel_size} is implausible; expected angstrom between {PLAUSIBLE_VOXEL_SIZE[0]} "
                f"and {PLAUSIBLE_VOXEL_SIZE[1]}"
            )
        size = (float(voxel_size),) * 3
    else:
        lo, hi = PLAUSIBLE_VOXEL_SIZE
        if not all(math.isfinite(v) and lo <= v <= hi for v in header_size):
            raise InputError(
                f"tomogram '{path}' has voxel size {header_size} angstrom (z, y, x) in its header, which is unset "
                f"or implausible; give the real one with --voxel-size"
            )
        size = header_size
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


def check_finite(block: np.ndarray, tomogram: Tomogram, origin: tuple[int, ...]) -> None:
    """Raise :class:`InputError` if ``block`` (a region of ``tomogram`` starting at ``origin``) has NaN or Inf."""
    if np.issubdtype(block.dtype, np.floating) and not np.isfinite(block).all():
        where = np.argwhere(~np.isfinite(block))[0]
        zyx = tuple(int(o + w) for o, w in zip(origin, where))
        raise InputError(f"tomogram '{tomogram.path}' has NaN or Inf voxels, e.g. at (z, y, x) = {zyx}")
