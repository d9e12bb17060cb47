"""The particle table in memory: one pandas DataFrame per table, positions in angstrom in tomocam's frame.

Columns (:data:`COLUMNS`): ``tomogram`` (str, the tomogram's name: its file stem, copick run name or rlnTomoName),
``class`` (str), ``x``, ``y``, ``z`` (float, angstrom; the centre of the tomogram's first voxel is 0 and voxel
``i`` lies at ``i * voxel_size``, the frame of the explain store's OME-Zarr coordinates), ``score`` (float, NaN when
the table has none). Optional: ``class_index`` (int, the model's 0-based class, written as RELION's 1-based
rlnClassNumber) and the orientation ``rot``, ``tilt``, ``psi`` (degrees, RELION's ZYZ Euler angles; the rotation
matrix that copick and the data portal store is :func:`rotation_matrices` of them).

Every reader in :mod:`tomocam.particles` returns this form and every writer takes it, so a command converts
coordinates only once, through angstrom, with the voxel size of the tomogram they belong to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from tomocam.errors import InputError

#: The columns every particle table has, in this order.
COLUMNS = ("tomogram", "class", "x", "y", "z", "score")
#: Orientation columns: RELION's ZYZ Euler angles (rot, tilt, psi) in degrees.
ANGLES = ("rot", "tilt", "psi")


@dataclass(frozen=True)
class TomogramInfo:
    """What a table needs to know about a tomogram: its ``name``, ``shape`` ``(z, y, x)`` in voxels and
    ``voxel_size`` ``(z, y, x)`` in angstrom (a single number means the same on every axis)."""

    name: str
    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]

    def __init__(self, name: str, shape: Sequence[int], voxel_size: float | Sequence[float]) -> None:
        size = tuple(float(v) for v in np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,)))
        if len(shape) != 3 or len(size) != 3 or min(size) <= 0:
            raise InputError(f"tomogram '{name}': shape and voxel size must be three sizes (z, y, x) > 0, found "
                             f"{tuple(shape)} and {size}")
        object.__setattr__(self, "name", str(name))
        object.__setattr__(self, "shape", tuple(int(n) for n in shape))
        object.__setattr__(self, "voxel_size", size)

    @property
    def isotropic_voxel_size(self) -> float:
        """The voxel size as one number, for formats that store one (copick, the data portal); refuses voxels
        that differ between axes."""
        if len(set(self.voxel_size)) != 1:
            raise InputError(f"tomogram '{self.name}' has voxel size {self.voxel_size} (z, y, x): this format "
                             "stores one voxel size for all axes")
        return self.voxel_size[0]


def particle_table(
    tomogram: str | Sequence[str] | NDArray,
    classes: str | Sequence[str] | NDArray,
    xyz: ArrayLike,
    score: ArrayLike | None = None,
    *,
    class_index: ArrayLike | None = None,
    angles: ArrayLike | None = None,
) -> pd.DataFrame:
    """A particle table from columns: ``xyz`` `(n, 3)` angstrom in (x, y, z) order, ``score`` `(n,)` (NaN when
    ``None``), ``angles`` `(n, 3)` RELION (rot, tilt, psi) degrees. ``tomogram`` and ``classes`` are one name for
    every row or one per row."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    n = len(xyz)
    frame = pd.DataFrame({
        "tomogram": _strings(tomogram, n),
        "class": _strings(classes, n),
        "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
        "score": np.full(n, np.nan) if score is None else np.asarray(score, dtype=np.float64).reshape(n),
    })
    if class_index is not None:
        frame["class_index"] = np.asarray(class_index, dtype=np.int64).reshape(n)
    if angles is not None:
        frame[list(ANGLES)] = np.asarray(angles, dtype=np.float64).reshape(n, 3)
    return frame


def _strings(value: str | Sequence[str] | NDArray, n: int) -> list[str]:
    """``value`` repeated ``n`` times, or the ``n`` values of a sequence, as str."""
    if isinstance(value, str):
        return [value] * n
    values = [str(v) for v in value]
    if len(values) != n:
        raise ValueError(f"expected {n} names, found {len(values)}")
    return values


def from_voxels(
    tomogram: TomogramInfo,
    classes: str | Sequence[str] | NDArray,
    zyx: ArrayLike,
    score: ArrayLike | None = None,
    *,
    class_index: ArrayLike | None = None,
) -> pd.DataFrame:
    """A particle table of positions ``zyx`` `(n, 3)` given in voxels of ``tomogram``'s grid, in array order
    (z, y, x); fractional voxels allowed."""
    zyx = np.asarray(zyx, dtype=np.float64).reshape(-1, 3)
    xyz = zyx[:, ::-1] * np.asarray(tomogram.voxel_size)[::-1]
    return particle_table(tomogram.name, classes, xyz, score, class_index=class_index)


def to_voxels(frame: pd.DataFrame, voxel_size: float | Sequence[float]) -> NDArray[np.float64]:
    """Positions of ``frame`` in voxels of size ``voxel_size`` ((z, y, x) angstrom or one number): `(n, 3)` in
    array order (z, y, x), fractional."""
    size = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,))
    return frame[["z", "y", "x"]].to_numpy(np.float64) / size


def check_table(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """``frame`` with the columns of :data:`COLUMNS` in their types (extra columns kept after them); a missing
    column or a non-finite position is refused naming ``source``."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"particle table {source} lacks columns {missing}")
    out = frame.reset_index(drop=True).copy()
    out["tomogram"] = out["tomogram"].astype(str)
    out["class"] = out["class"].astype(str)
    for c in ("x", "y", "z", "score"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(np.float64)
    bad = ~np.isfinite(out[["x", "y", "z"]].to_numpy()).all(axis=1)
    if bad.any():
        raise InputError(f"particle table {source}: row {int(np.argmax(bad))} has a position that is not a number")
    extra = [c for c in out.columns if c not in COLUMNS]
    return out[[*COLUMNS, *extra]]


def check_classes(frame: pd.DataFrame, classes: Sequence[str], source: str) -> None:
    """Refuse a table holding a class that is not one of ``classes`` (one line naming them)."""
    unknown = sorted(set(frame["class"]) - set(classes))
    if unknown:
        raise InputError(f"particle table {source} has classes {unknown} that are not among {list(classes)}")


def rows_of(names: NDArray, tomogram: str | None, source: str) -> NDArray[np.bool_]:
    """Which rows of a table whose rows name their tomograms ``names`` `(n,)` belong to ``tomogram`` (all when it is
    ``None``); a table that has rows but none of ``tomogram`` is refused naming the tomograms it has."""
    if tomogram is None:
        return np.ones(len(names), dtype=bool)
    keep = np.asarray(names, dtype=object) == tomogram
    if len(names) and not keep.any():
        found = sorted({str(n) for n in names})
        raise InputError(f"particle table {source} has no particles of tomogram '{tomogram}' (it has "
                         f"{', '.join(found[:5])}{', ...' if len(found) > 5 else ''})")
    return keep


def rotation_matrices(angles: ArrayLike) -> NDArray[np.float64]:
    """RELION's rotation matrices `(n, 3, 3)` of Euler angles `(n, 3)` (rot, tilt, psi) in degrees.

    RELION's ``Euler::anglesToMatrix3`` equals scipy's ``Rotation.from_euler("ZYZ", angles).inv()``; the copick
    picks format and the data portal's ``xyz_rotation_matrix`` store this same matrix (copick's
    ``copick.util.relion.relion_rows_to_poses`` converts RELION tables this way)."""
    from scipy.spatial.transform import Rotation

    angles = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    return Rotation.from_euler("ZYZ", angles, degrees=True).inv().as_matrix().reshape(-1, 3, 3)


def euler_angles(matrices: ArrayLike) -> NDArray[np.float64]:
    """RELION Euler angles `(n, 3)` (rot, tilt, psi) in degrees of rotation matrices `(n, 3, 3)`: the inverse of
    :func:`rotation_matrices`."""
    import warnings

    from scipy.spatial.transform import Rotation

    matrices = np.asarray(matrices, dtype=np.float64).reshape(-1, 3, 3)
    if len(matrices) == 0:
        return np.zeros((0, 3))
    with warnings.catch_warnings():  # tilt 0 or 180: rot and psi are one angle, scipy sets psi = 0 and says so
        warnings.simplefilter("ignore", UserWarning)
        angles = Rotation.from_matrix(matrices).inv().as_euler("ZYZ", degrees=True)
    return angles + 0.0  # no negative zeros
