"""Build small explain stores from given arrays for the tests of the store's readers (render, export, picks).

The store is written with the explain pipeline's own writers and the pure pyramid functions phase 2 uses
(:mod:`tomocam.store.create`, ``.ome``, ``.pyramid``), so the tests read exactly the layout that
``tomocam explain`` produces, without running a model.
"""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import zarr

from tomocam.store.create import create_root
from tomocam.store.manifest import record_whole, write_completion_marker
from tomocam.store.ome import image_metadata, label_metadata
from tomocam.store.pyramid import heatmap_pyramid, label_block, label_pyramid


def gaussian_blobs(shape, centres, amplitudes, sigma=2.0) -> np.ndarray:
    """Sum of isotropic Gaussians of height ``amplitudes`` at ``centres`` (array order), float32 ``shape``."""
    grid = np.indices(shape, dtype=np.float32)
    out = np.zeros(shape, np.float32)
    for c, a in zip(centres, amplitudes):
        d2 = sum((g - ci) ** 2 for g, ci in zip(grid, c))
        out += a * np.exp(-d2 / (2 * sigma**2))
    return out


def write_tomogram(path: Path, volume: np.ndarray, voxel_size: float) -> Path:
    """A float32 MRC tomogram ``(z, y, x)`` with ``voxel_size`` in the header."""
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(volume.astype(np.float32))
        mrc.voxel_size = voxel_size
    return path


def build_store(
    path: Path,
    heatmaps: dict[str, np.ndarray],
    classes: list[str],
    voxel_size: float,
    input_path: Path,
    *,
    n_levels: int = 2,
    chunk: int = 16,
    label_threshold: float = 0.5,
    complete: bool = True,
) -> Path:
    """A store at ``path`` with ``heatmaps[method]`` `(c, z, y, x)` at level 0 for each method, its pyramid,
    the label image (from the first method) and the provenance attributes a finished run writes."""
    path = str(path)
    first = next(iter(heatmaps.values()))
    vs = (voxel_size,) * 3
    root = create_root(
        path,
        {
            "version": "test",
            "classes": classes,
            "methods": list(heatmaps),
            "layer": "features.pool2",
            "levels": n_levels,
            "input": {"path": str(input_path), "shape": list(first.shape[1:]), "voxel_size": list(vs)},
        },
    )
    for method, maps in heatmaps.items():
        group = root.create_group(method)
        for level, values in enumerate(heatmap_pyramid(maps.astype(np.float32), n_levels)):
            group.create_array(str(level), data=values, chunks=(1, chunk, chunk, chunk))
        group.attrs["ome"] = image_metadata(method, vs, n_levels, classes, (-1.0, 1.0))
    labels_root = root.create_group("labels")
    labels = labels_root.create_group("segmentation")
    for level, values in enumerate(label_pyramid(label_block(first, label_threshold, ()), n_levels)):
        labels.create_array(str(level), data=values, chunks=(chunk, chunk, chunk))
    labels.attrs["ome"] = label_metadata("segmentation", vs, n_levels, classes, "../../respond")
    labels_root.attrs["ome"] = {"version": "0.5", "labels": ["segmentation"]}
    record_whole(path, *[name for name, node in root.members(max_depth=None) if isinstance(node, zarr.Array)])
    if complete:
        write_completion_marker(path)
    return Path(path)


def open_group(path: Path) -> zarr.Group:
    return zarr.open_group(str(path), mode="r")
