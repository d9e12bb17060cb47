"""Where the voxels of a store's pyramid levels sit in space, read from their OME-Zarr metadata.

Space is the store's OME-Zarr space: angstrom, the centre of the tomogram's first voxel at 0. Level ``n``
voxel ``i`` (per axis) is centred at ``origin + i * voxel_size``. Readers that draw or export a level use this
to place it over the tomogram, and :func:`choose_level` picks the coarsest level that still gives the
resolution a figure needs, so large stores are read at the size they are shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomocam.store.reader import ExplainStore


@dataclass(frozen=True)
class VoxelSpace:
    """Voxel size and centre of voxel (0, 0, 0), both `(z, y, x)` angstrom."""

    voxel_size: tuple[float, ...]
    origin: tuple[float, ...] = (0.0, 0.0, 0.0)

    def to_space(self, index: np.ndarray) -> np.ndarray:
        """Voxel indices `(n, 3)` -> positions `(n, 3)` in angstrom."""
        return np.asarray(self.origin) + np.asarray(index, dtype=np.float64) * np.asarray(self.voxel_size)

    def to_index(self, position: np.ndarray) -> np.ndarray:
        """Positions `(n, 3)` in angstrom -> fractional voxel indices `(n, 3)`."""
        return (np.asarray(position, dtype=np.float64) - np.asarray(self.origin)) / np.asarray(self.voxel_size)


def level_space(store: ExplainStore, group: str, level: int) -> VoxelSpace:
    """The voxel space of ``level`` of the multiscale image ``group`` (``"respond"``, ``"gradcam"`` or
    ``"labels/segmentation"``), from its ``coordinateTransformations``; space axes only."""
    group = group
    ms = store.root[group].attrs["ome"]["multiscales"][0]
    n_space = sum(1 for a in ms["axes"] if a.get("type") == "space")
    dataset = next(d for d in ms["datasets"] if d["path"] == str(level))
    scale = [1.0] * n_space
    shift = [0.0] * n_space
    for t in dataset["coordinateTransformations"]:
        if t["type"] == "scale":
            scale = t["scale"][-n_space:]
        elif t["type"] == "translation":
            shift = t["translation"][-n_space:]
    return VoxelSpace(tuple(float(s) for s in scale), tuple(float(s) for s in shift))


def choose_level(shapes: list[tuple[int, ...]], pixels: int) -> int:
    """The coarsest level whose largest axis still has at least ``pixels`` voxels (level 0 if none has).

    ``shapes``: the spatial shape of every level, finest first. A figure panel ``pixels`` wide gains nothing
    from finer data, so this bounds what is read by the size of the output, not of the tomogram.
    """
    best = 0
    for level, shape in enumerate(shapes):
        if max(shape) >= pixels:
            best = level
    return best
