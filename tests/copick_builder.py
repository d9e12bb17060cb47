"""A small explain store and a copick filesystem project for the copick export tests (no copick needed).

The store has a background class and two particle classes, one with an underscore in its name (copick names
cannot have one); the project's tomogram is an OME-NGFF 0.4 zarr v2 group written with plain zarr, laid out as
copick 1.31 lays it out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import zarr
from store_builder import build_store, gaussian_blobs, write_tomogram

SHAPE = (20, 24, 28)
VOXEL = 10.0
RUN = "TS-01"
CLASSES = ["background", "ribosome", "proteasome_26S"]
CENTRES = {"ribosome": [(6, 8, 9), (14, 16, 20)], "proteasome_26S": [(10, 18, 6)]}
#: The config's objects: labels differ from the store's class order + 1, so a missing mapping shows.
OBJECTS = [
    {"name": "membrane", "is_particle": False, "label": 1},
    {"name": "ribosome", "is_particle": True, "label": 3, "radius": 50.0},
    {"name": "proteasome-26S", "is_particle": True, "label": 7, "radius": 60.0},
]
LABELS = {"ribosome": 3, "proteasome_26S": 7}


def make_store(folder: Path, classes: list[str] | None = None) -> Path:
    """An explain store of a ``SHAPE`` tomogram at ``VOXEL`` A: Gaussian blobs at ``CENTRES``, background 0.1."""
    classes = classes or CLASSES
    maps = np.stack([
        np.full(SHAPE, 0.1, np.float32) if name == "background"
        else gaussian_blobs(SHAPE, CENTRES.get(name, []), [3.0] * len(CENTRES.get(name, [])))
        for name in classes
    ])
    tomo = write_tomogram(folder / "tomo.mrc", maps[1:].sum(0), VOXEL)
    return build_store(folder / "run.zarr", {"respond": maps, "gradcam": 0.5 * maps}, classes, VOXEL, tomo)


def make_project(folder: Path, objects: list[dict] | None = None, tomograms: tuple[str, ...] = ("wbp",),
                 shape: tuple[int, int, int] = SHAPE) -> Path:
    """A copick project at ``folder`` (overlay root only) with run ``RUN`` and the ``tomograms`` at ``VOXEL``;
    returns its config path."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "name": "test", "description": "tomocam export test", "version": "1.31.0", "config_type": "filesystem",
        "pickable_objects": objects if objects is not None else OBJECTS,
        "overlay_root": f"local://{folder.absolute()}", "overlay_fs_args": {"auto_mkdir": True},
    }
    path = folder / "copick_config.json"
    path.write_text(json.dumps(config, indent=2))
    vs = folder / "ExperimentRuns" / RUN / f"VoxelSpacing{VOXEL:.3f}"
    vs.mkdir(parents=True)
    for name in tomograms:
        group = zarr.open_group(str(vs / f"{name}.zarr"), mode="w", zarr_format=2)
        group.create_array("0", data=np.zeros(shape, np.float32), chunks=(16, 16, 16),
                           chunk_key_encoding={"name": "v2", "separator": "/"})
        group.attrs["multiscales"] = [{
            "version": "0.4", "name": "/",
            "axes": [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [VOXEL] * 3}]}],
        }]
    return path
