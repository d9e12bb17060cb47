"""The checked tomogram every reader returns, whatever its format, and the checks all formats share.

A :class:`Tomogram` is a small picklable record (no open file): workers reopen its voxels lazily with
:meth:`Tomogram.array`, an array-like in ``(z, y, x)`` order that reads only the region it is sliced with. The
pipeline never needs to know which format it came from. Readers: :mod:`tomocam.read.mrc`,
:mod:`tomocam.read.omezarr`; choosing one: :func:`tomocam.read.open_tomogram`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tomocam.errors import InputError

#: Voxel sizes outside this range (angstrom) are taken as unset headers, not as real sampling.
PLAUSIBLE_VOXEL_SIZE: tuple[float, float] = (0.1, 1000.0)

#: Formats a :class:`Tomogram` can be read from.
FORMATS = ("mrc", "zarr")


@dataclass(frozen=True)
class Tomogram:
    """A checked 3-D tomogram: what the pipeline needs to read it anywhere (picklable, no open file).

    ``path`` is the MRC file, or the zarr array of the pyramid level read (``image.zarr/0``), so that reopening
    ``path`` with :func:`tomocam.read.open_tomogram` reads the same voxels. ``shape`` and ``voxel_size``
    (angstrom) are in ``(z, y, x)`` order. ``axes[i]`` is the stored array's axis that holds axis ``i`` of
    ``(z, y, x)``; any other stored axis (an OME-Zarr channel or time axis) has length 1.
    """

    path: str
    shape: tuple[int, ...]
    dtype: str
    voxel_size: tuple[float, float, float]
    axes: tuple[int, ...] = (0, 1, 2)
    format: str = "mrc"

    def array(self) -> Any:
        """The voxels as a lazy read-only ``(z, y, x)`` array (cached per process): a ``numpy.memmap`` view of
        an MRC file, a :class:`tomocam.read.omezarr.ZarrVolume` of a zarr array. Slicing it reads that region."""
        return _open_volume(self.format, self.path, self.axes)


@functools.lru_cache(maxsize=8)
def _open_volume(fmt: str, path: str, axes: tuple[int, ...]) -> Any:
    if fmt == "mrc":
        from tomocam.read.mrc import memmap

        return memmap(path, axes)
    if fmt == "zarr":
        from tomocam.read.omezarr import ZarrVolume

        return ZarrVolume.open(path, axes)
    raise ValueError(f"unknown tomogram format '{fmt}'; expected one of {', '.join(FORMATS)}")


def checked_voxel_size(
    path: str, found: tuple[float, float, float] | None, override: float | None, where: str
) -> tuple[float, float, float]:
    """The voxel size ``(z, y, x)`` angstrom to use: ``override`` (``--voxel-size``, isotropic) if given, else
    ``found`` in the file (``where`` says where, for the error). Raises :class:`InputError` for an implausible
    override, or a missing or implausible ``found`` without one."""
    lo, hi = PLAUSIBLE_VOXEL_SIZE
    if override is not None:
        if not (lo <= override <= hi):
            raise InputError(f"--voxel-size {override} is implausible; expected angstrom between {lo} and {hi}")
        return (float(override),) * 3
    if found is None:
        raise InputError(f"tomogram '{path}' gives no voxel size in its {where}; give it with --voxel-size")
    if not all(math.isfinite(v) and lo <= v <= hi for v in found):
        raise InputError(
            f"tomogram '{path}' has voxel size {found} angstrom (z, y, x) in its {where}, which is unset or "
            f"implausible; give the real one with --voxel-size"
        )
    return found


def check_finite(block: np.ndarray, tomogram: Tomogram, origin: tuple[int, ...]) -> None:
    """Raise :class:`InputError` if ``block`` (a region of ``tomogram`` starting at ``origin``) has NaN or Inf."""
    if np.issubdtype(block.dtype, np.floating) and not np.isfinite(block).all():
        where = np.argwhere(~np.isfinite(block))[0]
        zyx = tuple(int(o + w) for o, w in zip(origin, where))
        raise InputError(f"tomogram '{tomogram.path}' has NaN or Inf voxels, e.g. at (z, y, x) = {zyx}")
