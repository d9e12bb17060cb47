"""The CZ cryoET data portal's point annotations: ndjson, one object a line, positions in VOXELS.

Each line is ``{"type": "point", "location": {"x", "y", "z"}, "xyz_rotation_matrix": 3x3}`` or the same with
``"type": "orientedPoint"``, in voxels of the annotation's voxel spacing (voxel ``i`` at ``i``; copick multiplies
by the voxel spacing to get its angstrom positions, ``copick.impl.cryoet_data_portal``). The file names neither
tomogram, class nor voxel size: the caller gives them (the class defaults to the file's stem). Point lines carry
the identity matrix, as copick's reader expects a matrix on every line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tomocam.errors import InputError
from tomocam.particles.copick_json import _single
from tomocam.particles.table import ANGLES, TomogramInfo, euler_angles, particle_table, rotation_matrices


def read_ndjson(path: Path, *, tomograms: Mapping[str, TomogramInfo] | None, voxel_size: float | None,
                tomogram: str | None, class_name: str | None) -> pd.DataFrame:
    """A data-portal ndjson annotation as a particle table."""
    if tomogram is None:
        raise InputError(f"particle table '{path}' (data-portal ndjson) does not name its tomogram: give the "
                         "tomogram's name")
    info = tomograms.get(tomogram) if tomograms is not None else None
    if voxel_size is None and info is None:
        raise InputError(f"particle table '{path}' (data-portal ndjson) is in voxels: give the annotation's voxel "
                         "size")
    size = voxel_size if voxel_size is not None else info.isotropic_voxel_size  # type: ignore[union-attr]
    voxels, matrices, oriented = [], [], False
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise InputError(f"particle table '{path}' cannot be read: {err.strerror or err}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            kind = item.get("type")
            if kind not in ("point", "orientedPoint"):
                raise ValueError(f"type {kind!r} is not 'point' or 'orientedPoint'")
            voxels.append([float(item["location"][k]) for k in "xyz"])
            matrices.append(np.asarray(item.get("xyz_rotation_matrix", np.eye(3)), dtype=np.float64).reshape(3, 3))
            oriented |= kind == "orientedPoint"
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise InputError(f"particle table '{path}' line {number} is not a data-portal point: {err}") from None
    xyz = np.asarray(voxels, dtype=np.float64).reshape(-1, 3) * size
    angles = euler_angles(np.asarray(matrices)) if oriented else None
    return particle_table(tomogram, class_name or Path(path).stem, xyz, None, angles=angles)


def ndjson_lines(frame: pd.DataFrame, tomograms: Mapping[str, TomogramInfo]) -> list[str]:
    """The ndjson lines of a table of one tomogram and one class, in voxels of that tomogram."""
    (name,), _ = _single(frame, "tomogram"), _single(frame, "class")
    info = tomograms.get(name)
    if info is None:
        raise InputError(f"data-portal points are in voxels: give the voxel size of tomogram '{name}'")
    voxels = frame[["x", "y", "z"]].to_numpy(np.float64) / info.isotropic_voxel_size
    oriented = set(ANGLES) <= set(frame.columns)
    matrices = rotation_matrices(frame[list(ANGLES)].to_numpy()) if oriented else np.tile(np.eye(3), (len(frame), 1, 1))
    return [json.dumps({"type": "orientedPoint" if oriented else "point",
                        "location": {"x": float(x), "y": float(y), "z": float(z)},
                        "xyz_rotation_matrix": m.tolist()}) for (x, y, z), m in zip(voxels, matrices)]


def write_ndjson(lines: list[str], path: Path) -> None:
    """Write ndjson lines."""
    Path(path).write_text("".join(line + "\n" for line in lines))
