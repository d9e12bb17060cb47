"""copick picks JSON: one pickable object of one run, positions in angstrom.

The file (``ExperimentRuns/<run>/Picks/<user>_<session>_<object>.json`` in a copick project) holds
``pickable_object_name, user_id, session_id, run_name, voxel_spacing, unit: "angstrom", trust_orientation`` and
``points: [{location: {x, y, z}, transformation_: 4x4, instance_id, score}]``. copick's location is in angstrom
with voxel ``i`` at ``i * voxel_spacing``, tomocam's own frame: copick converts data-portal voxels by multiplying
with the voxel spacing (``copick.impl.cryoet_data_portal.CopickPicksFileCDP.from_portal``) and centres RELION
tables at shape / 2 * voxel spacing (``copick.util.relion.copick_tomogram_center``). A point's position is its
location plus the translation of its ``transformation_``; the rotation part is the RELION matrix of
:func:`tomocam.particles.table.rotation_matrices`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tomocam.errors import InputError
from tomocam.particles.table import ANGLES, TomogramInfo, euler_angles, particle_table, rotation_matrices, rows_of


def read_copick(path: Path, *, tomogram: str | None, class_name: str | None) -> pd.DataFrame:
    """A copick picks file as a particle table (class: ``pickable_object_name``; tomogram: ``run_name``)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"particle table '{path}' is not readable JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("points", []), list):
        raise InputError(f"particle table '{path}' is not a copick picks file: expected an object with 'points'")
    unit = data.get("unit", "angstrom")
    if unit != "angstrom":
        raise InputError(f"particle table '{path}' has unit '{unit}': copick picks are read in angstrom only")
    name = data.get("run_name") or tomogram
    if name is None:
        raise InputError(f"particle table '{path}' has no run_name: add one or give the tomogram's name")
    rows_of(np.array([name]), tomogram, f"'{path}'")  # a run of another tomogram is refused
    cls = data.get("pickable_object_name") or class_name
    if cls is None:
        raise InputError(f"particle table '{path}' has no pickable_object_name: add one or give the class")
    points = data.get("points") or []
    try:
        xyz = np.array([[p["location"][k] for k in "xyz"] for p in points], dtype=np.float64).reshape(-1, 3)
        transforms = np.array([p.get("transformation_", np.eye(4)) for p in points], dtype=np.float64).reshape(-1, 4, 4)
        scores = np.array([p.get("score", math.nan) for p in points], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"particle table '{path}': a point lacks location x, y, z or has a malformed "
                         f"transformation_ ({err})") from None
    xyz = xyz + transforms[:, :3, 3]
    angles = euler_angles(transforms[:, :3, :3]) if data.get("trust_orientation", True) and len(points) else None
    rotated = angles is not None and not np.allclose(transforms[:, :3, :3], np.eye(3))
    return particle_table(str(name), str(cls), xyz, scores, angles=angles if rotated else None)


def copick_document(frame: pd.DataFrame, tomograms: Mapping[str, TomogramInfo], *, user_id: str,
                    session_id: str) -> dict[str, Any]:
    """The copick picks document of a table of one tomogram and one class."""
    (name,), (cls,) = _single(frame, "tomogram"), _single(frame, "class")
    info = tomograms.get(name)
    oriented = set(ANGLES) <= set(frame.columns)
    transforms = np.tile(np.eye(4), (len(frame), 1, 1))
    if oriented:
        transforms[:, :3, :3] = rotation_matrices(frame[list(ANGLES)].to_numpy())
    points = []
    for (x, y, z), score, transform in zip(frame[["x", "y", "z"]].to_numpy(np.float64), frame["score"], transforms):
        point: dict[str, Any] = {"location": {"x": float(x), "y": float(y), "z": float(z)},
                                 "transformation_": transform.tolist(), "instance_id": 0}
        if not math.isnan(score):
            point["score"] = float(score)
        points.append(point)
    return {"pickable_object_name": cls, "user_id": user_id, "session_id": session_id, "run_name": name,
            "voxel_spacing": info.isotropic_voxel_size if info is not None else None, "unit": "angstrom",
            "trust_orientation": oriented, "points": points}


def _single(frame: pd.DataFrame, column: str) -> list[str]:
    """The one value of ``column`` in ``frame``; a table of several is refused (one file per value)."""
    values = sorted(set(frame[column]))
    if len(values) != 1:
        raise InputError(f"a copick or data-portal file holds one {column}, this table has {len(values)} "
                         f"({', '.join(values[:5]) or 'none'}): write one file per {column}")
    return values


def write_json(document: Mapping[str, Any], path: Path) -> None:
    """Write a JSON document."""
    Path(path).write_text(json.dumps(document, indent=1) + "\n")
