"""Open one pyramid level of a local OME-Zarr image (OME-NGFF 0.4 on zarr v2, 0.5 on zarr v3) as a tomogram.

The voxels are never loaded as a whole: :class:`ZarrVolume` is a ``(z, y, x)`` view of the level's zarr array,
and slicing it decodes only the chunks the region touches (the pipeline reads a block's slab at a time, as from
an MRC file). :func:`open_ome_zarr` checks the metadata only: the image's ``multiscales`` (``ome`` attribute in
0.5, the group's own attributes in 0.4), its three space axes (any channel or time axis of length 1), the data
type, and the voxel size: the level's ``scale`` times the multiscale's own ``coordinateTransformations`` scale,
converted to angstrom from the axes' ``unit``. Translations are not read: tomocam's frame puts the centre of the
first voxel at 0, as for an MRC file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tomocam.errors import InputError
from tomocam.read.tomogram import Tomogram, checked_voxel_size

#: Angstrom per unit, for the space units of OME-NGFF (UDUNITS-2 names) that tomograms use.
ANGSTROM_PER_UNIT: dict[str, float] = {
    "angstrom": 1.0,
    "picometer": 0.01,
    "nanometer": 10.0,
    "micrometer": 1e4,
    "millimeter": 1e7,
    "centimeter": 1e8,
    "meter": 1e10,
}

#: Files that mark a folder as a zarr node: zarr v3, zarr v2 group, zarr v2 array.
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")

#: Array axes ordered as tomocam reads them.
SPACE = ("z", "y", "x")


def is_zarr(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a zarr group or array (v2 or v3)."""
    return any(Path(path, m).is_file() for m in ZARR_MARKERS)


def _attributes(path: Path) -> dict[str, Any]:
    """The attributes of the zarr node at ``path`` (v3 ``zarr.json``, v2 ``.zattrs``), without opening arrays."""
    try:
        if Path(path, "zarr.json").is_file():
            return dict(json.loads(Path(path, "zarr.json").read_text()).get("attributes", {}))
        if Path(path, ".zattrs").is_file():
            return dict(json.loads(Path(path, ".zattrs").read_text()))
    except (OSError, ValueError, AttributeError) as err:
        raise InputError(f"'{path}' has unreadable zarr metadata: {str(err).splitlines()[0]}") from None
    return {}


def multiscales(path: Path) -> list[dict[str, Any]] | None:
    """The ``multiscales`` list of the OME-Zarr image group at ``path`` (0.5: under ``ome``; 0.4: top level),
    or ``None`` if it has none."""
    attrs = _attributes(path)
    ome = attrs.get("ome")
    found = (ome if isinstance(ome, dict) else attrs).get("multiscales")
    return found if isinstance(found, list) and found else None


def level_path(image: str | Path, level: int) -> str:
    """The path of pyramid ``level`` (0: the finest) of the OME-Zarr image ``image``: its ``datasets[level]``."""
    image = Path(image)
    ms = multiscales(image)
    if ms is None:
        raise InputError(f"'{image}' is not an OME-Zarr image: it has no 'multiscales' metadata")
    datasets = ms[0].get("datasets") or []
    if not 0 <= level < len(datasets):
        raise InputError(f"OME-Zarr image '{image}' has {len(datasets)} pyramid levels; --level {level} is not one "
                         f"of 0..{len(datasets) - 1}")
    return str(image / str(datasets[level]["path"]))


def open_ome_zarr(path: str | Path, voxel_size: float | None = None, *, level: int = 0) -> Tomogram:
    """Open pyramid ``level`` of the OME-Zarr image ``path`` (or, if ``path`` is one level's array inside an
    image, that level) as a 3-D tomogram, checking its metadata.

    ``voxel_size`` (angstrom, isotropic) overrides the one in the metadata. Raises :class:`InputError` for a
    missing path, a zarr node that is not an OME-Zarr image, unreadable metadata, a level that does not exist,
    an image that is not one 3-D volume (fewer space axes, or a channel or time axis longer than 1), voxels that
    are not numbers, or an unusable voxel size without an override.
    """
    import zarr

    path = Path(path).absolute()
    if not path.is_dir() or not is_zarr(path):
        raise InputError(f"tomogram '{path}' does not exist or is not a zarr folder")
    image, ms = path, multiscales(path)
    parent = multiscales(path.parent)
    if ms is None and parent is not None:  # one level's array inside an image
        image, ms = path.parent, parent
        datasets = [str(d.get("path")) for d in ms[0].get("datasets", [])]
        if path.name not in datasets:
            raise InputError(f"'{path}' is not a pyramid level of the OME-Zarr image '{image}' (levels: "
                             f"{', '.join(datasets)})")
        level = datasets.index(path.name)
    if ms is None:
        raise InputError(f"tomogram '{path}' is a zarr folder but not an OME-Zarr image: it has no 'multiscales' "
                         f"metadata")
    array_path = Path(level_path(image, level))
    meta = ms[0]
    try:
        array = zarr.open_array(array_path, mode="r")
    except Exception as err:  # zarr raises many types for a missing or malformed array
        raise InputError(f"level {level} of OME-Zarr image '{image}' cannot be read as a zarr array: "
                         f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    axes = _axes(meta, image)
    if len(axes) != array.ndim:
        raise InputError(f"OME-Zarr image '{image}' names {len(axes)} axes but its level {level} has "
                         f"{array.ndim} dimensions")
    names = [a["name"] for a in axes]
    space = [i for i, a in enumerate(axes) if a["type"] == "space"]
    if sorted(names[i] for i in space) != sorted(SPACE):
        raise InputError(f"tomogram '{image}' is not a 3-D volume: its space axes are "
                         f"{', '.join(names[i] for i in space) or 'none'} (shape {tuple(array.shape)}); "
                         f"expected z, y, x")
    extra = [(names[i], array.shape[i]) for i in range(array.ndim) if i not in space and array.shape[i] != 1]
    if extra:
        raise InputError(f"tomogram '{image}' holds more than one volume: axis "
                         + ", ".join(f"'{n}' has {m}" for n, m in extra) + "; tomocam reads one 3-D volume")
    order = tuple(names.index(a) for a in SPACE)  # stored axis of z, y, x
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "iuf":
        raise InputError(f"tomogram '{image}' has voxels of type {dtype}; expected integers or floating-point "
                         f"numbers")
    found = _voxel_size(meta, level, axes, order, image)
    size = checked_voxel_size(str(image), found, voxel_size, f"OME-Zarr scale (level {level})")
    return Tomogram(path=str(array_path), shape=tuple(int(array.shape[a]) for a in order),
                    dtype=str(dtype.newbyteorder("=")), voxel_size=size, axes=order, format="zarr")


def _axes(meta: dict[str, Any], image: Path) -> list[dict[str, Any]]:
    """The multiscale's axes as ``{"name", "type", "unit"}`` (0.3's plain names accepted; type inferred from
    the name where missing)."""
    out = []
    for a in meta.get("axes") or [{"name": n} for n in ("t", "c", *SPACE)]:
        a = {"name": a} if isinstance(a, str) else a
        if not isinstance(a, dict) or "name" not in a:
            raise InputError(f"OME-Zarr image '{image}' has malformed axes metadata: {a!r}")
        name = str(a["name"]).lower()
        kind = a.get("type") or ("space" if name in SPACE else "time" if name == "t" else "channel")
        out.append({"name": name, "type": str(kind), "unit": a.get("unit")})
    return out


def _scale(transforms: list[dict[str, Any]] | None, n: int, image: Path) -> list[float]:
    """The ``scale`` of a list of coordinate transformations (all ones if there is none)."""
    for t in transforms or []:
        if t.get("type") == "scale":
            if "scale" not in t or len(t["scale"]) != n:
                raise InputError(f"OME-Zarr image '{image}' has a scale transformation that is not a list of "
                                 f"{n} numbers: {t!r}")
            return [float(v) for v in t["scale"]]
    return [1.0] * n


def _voxel_size(meta: dict[str, Any], level: int, axes: list[dict[str, Any]], order: tuple[int, ...],
                image: Path) -> tuple[float, float, float] | None:
    """Angstrom ``(z, y, x)`` between voxels of ``level``: its scale times the multiscale's, in the axes' units;
    ``None`` if no space axis names a unit."""
    units = [axes[a]["unit"] for a in order]
    if all(u is None for u in units):
        return None
    unknown = sorted({str(u) for u in units if u not in ANGSTROM_PER_UNIT})
    if unknown:
        raise InputError(f"OME-Zarr image '{image}' has space unit {', '.join(unknown)}; tomocam reads "
                         f"{', '.join(ANGSTROM_PER_UNIT)}")
    n = len(axes)
    scale = np.multiply(_scale(meta["datasets"][level].get("coordinateTransformations"), n, image),
                        _scale(meta.get("coordinateTransformations"), n, image))
    return tuple(float(scale[a]) * ANGSTROM_PER_UNIT[str(u)] for a, u in zip(order, units))  # type: ignore[return-value]


class ZarrVolume:
    """A zarr array read as a lazy ``(z, y, x)`` volume: ``volume[region]`` (integers and slices, one per axis
    at most) decodes the chunks of that region only and returns a numpy array in ``(z, y, x)`` order.

    ``axes[i]`` is the stored axis of axis ``i`` of ``(z, y, x)``; every other stored axis has length 1 and is
    read at index 0. A chunk that does not decode is an :class:`InputError` naming the array.
    """

    def __init__(self, array: Any, axes: tuple[int, ...], path: str):
        self._array = array
        self._axes = axes
        self.path = path
        self.dtype = np.dtype(array.dtype)
        self.shape = tuple(int(array.shape[a]) for a in axes)
        self.ndim = len(axes)
        self.itemsize = self.dtype.itemsize

    @classmethod
    def open(cls, path: str, axes: tuple[int, ...]) -> ZarrVolume:
        """Open the zarr array at ``path`` read-only. Arrays of non-native byte order are read through
        zarr-python's own codec pipeline (zarrs reads native byte order only)."""
        import zarr

        from tomocam.store.layout import DEFAULT_PIPELINE

        array = zarr.open_array(path, mode="r")
        if not np.dtype(array.dtype).isnative:
            with zarr.config.set({"codec_pipeline.path": DEFAULT_PIPELINE}):
                array = zarr.open_array(path, mode="r")
        return cls(array, axes, path)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > self.ndim or any(not isinstance(k, (slice, int, np.integer)) for k in key):
            raise IndexError(f"a tomogram volume takes up to {self.ndim} integers or slices, not {key!r}")
        key = key + (slice(None),) * (self.ndim - len(key))
        stored: list[Any] = [0] * self._array.ndim
        for k, a in zip(key, self._axes):
            stored[a] = k
        try:
            out = np.asarray(self._array[tuple(stored)])
        except (ValueError, RuntimeError, OSError, TypeError) as err:
            raise InputError(f"tomogram '{self.path}' has a chunk that cannot be read in region {key}: "
                             f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
        kept = [a for a in range(self._array.ndim) if isinstance(stored[a], slice)]  # stored order
        wanted = [a for a in self._axes if isinstance(stored[a], slice)]  # (z, y, x) order
        return out.transpose([kept.index(a) for a in wanted])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self[()], dtype=dtype)

    def __len__(self) -> int:
        return self.shape[0]
