"""A copick filesystem project on disk: its config, its names and where each kind of result lives.

copick (the project format cryo-ET tools such as napari-copick, octopi and copick-torch share) keeps everything
in plain files under two roots named by ``copick_config.json``: ``static_root`` (read-only, optional) and
``overlay_root`` (where new results go; both roots are the same folder when ``static_root`` is absent). The paths
below are the ones copick 1.31 builds (``copick/impl/filesystem.py``, ``copick/util/segmentation.py``)::

    ExperimentRuns/<run>/
        Picks/<user>_<session>_<object>.json
        Segmentations/<voxel size %.3f>_<user>_<session>_<name>[-multilabel].zarr
        VoxelSpacing<voxel size %.3f>/<tomo type>.zarr
        VoxelSpacing<voxel size %.3f>/<tomo type>_<feature type>_features.zarr

copick splits those names at underscores, so user, session, object and feature names may not contain one
(:func:`check_name`, copick's ``sanitize_name`` rule). tomocam never imports copick (it pins ``zarr<3``); it reads
the config as JSON (roots and tomograms as :mod:`tomocam.read.copick` finds them) and writes the files copick
reads.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tomocam.errors import InputError, OutputError
from tomocam.read.copick import CopickProject

#: Characters copick refuses in object, user, session and feature names (``copick.util.escape.sanitize_name``).
_INVALID = re.compile(r'[<>:"/\\|?*\x00-\x1F\x7F\s_]')


def sanitize_name(name: str) -> str:
    """``name`` as copick would store it: each invalid character (underscore, whitespace, the characters
    ``<>:"/|?*``, backslash, control characters) becomes ``-``, and leading or trailing ``-`` go (``""`` when
    nothing is left)."""
    return _INVALID.sub("-", name).strip("-")


def check_name(kind: str, name: str) -> str:
    """``name`` unchanged if copick accepts it as a ``kind`` (``session``, ``object``, ...) name; else
    :class:`InputError` saying which characters are refused."""
    if not name or sanitize_name(name) != name:
        raise InputError(
            f"copick {kind} name {name!r} is not allowed: copick names may not be empty or contain underscores, "
            f"whitespace or any of <>:\"/\\|?*, nor start or end with '-'"
            + (f" (try {sanitize_name(name)!r})" if sanitize_name(name) else "")
        )
    return name


def voxel_folder(voxel_size: float) -> str:
    """The copick folder name of a voxel spacing: ``VoxelSpacing10.000``."""
    return f"VoxelSpacing{voxel_size:.3f}"


@dataclass(frozen=True)
class WritableProject:
    """A copick filesystem project opened for writing (see :func:`open_project`): the project as
    :class:`tomocam.read.copick.CopickProject` finds its roots and tomograms, and its config's content."""

    project: CopickProject
    config: dict[str, Any]

    @property
    def config_path(self) -> Path:
        """The project's ``copick_config.json``."""
        return self.project.config

    @property
    def overlay(self) -> Path:
        """The overlay root: where copick, and tomocam, write new results."""
        return self.project.roots[0]

    @property
    def objects(self) -> list[dict[str, Any]]:
        """The config's ``pickable_objects`` (name, is_particle, label, radius, ...)."""
        return list(self.config.get("pickable_objects") or [])

    def run_dirs(self, run: str) -> list[Path]:
        """The run's folders that exist, overlay first (copick lists the union of both roots)."""
        return [d for d in (root / "ExperimentRuns" / run for root in self.project.roots) if d.is_dir()]

    def runs(self) -> list[str]:
        """Names of the project's runs, all roots together."""
        return self.project.runs()

    def overlay_run(self, run: str) -> Path:
        """Where new results of ``run`` go (``overlay_root/ExperimentRuns/<run>``)."""
        return self.overlay / "ExperimentRuns" / run

    def tomograms(self, run: str, voxel_size: float) -> dict[str, Path]:
        """Tomogram type -> its ``.zarr`` folder at ``voxel_size`` in ``run`` (the overlay's wins), sorted."""
        found: dict[str, Path] = {}
        for run_dir in reversed(self.run_dirs(run)):
            for p in (run_dir / voxel_folder(voxel_size)).glob("*.zarr"):
                if p.is_dir() and not p.name.endswith("_features.zarr") and not p.name.startswith("."):
                    found[p.name.removesuffix(".zarr")] = p
        return dict(sorted(found.items()))

    def picks_path(self, run: str, user: str, session: str, obj: str) -> Path:
        """``overlay/ExperimentRuns/<run>/Picks/<user>_<session>_<object>.json``."""
        return self.overlay_run(run) / "Picks" / f"{user}_{session}_{obj}.json"

    def segmentation_path(self, run: str, voxel_size: float, user: str, session: str, name: str) -> Path:
        """``overlay/ExperimentRuns/<run>/Segmentations/<vs>_<user>_<session>_<name>-multilabel.zarr``."""
        return self.overlay_run(run) / "Segmentations" / f"{voxel_size:.3f}_{user}_{session}_{name}-multilabel.zarr"

    def features_path(self, run: str, voxel_size: float, tomo_type: str, feature: str) -> Path:
        """``overlay/ExperimentRuns/<run>/VoxelSpacing<vs>/<tomo type>_<feature>_features.zarr``."""
        return self.overlay_run(run) / voxel_folder(voxel_size) / f"{tomo_type}_{feature}_features.zarr"

    def with_objects(self, objects: Sequence[Mapping[str, Any]]) -> WritableProject:
        """The same project with ``objects`` appended to ``pickable_objects`` (in memory; see :meth:`save`)."""
        config = dict(self.config)
        config["pickable_objects"] = [*self.objects, *(dict(o) for o in objects)]
        return WritableProject(self.project, config)

    def save(self) -> None:
        """Write the config back to its file atomically (a temporary file renamed over it), keeping every key."""
        partial = self.config_path.with_name(f".{self.config_path.name}.partial")
        try:
            partial.write_text(json.dumps(self.config, indent=4) + "\n")
            os.replace(partial, self.config_path)
        except OSError as err:
            partial.unlink(missing_ok=True)
            raise OutputError(f"cannot write copick config {self.config_path}: {err.strerror or err}") from err


def open_project(config_path: str | Path) -> WritableProject:
    """Open a copick filesystem project's ``copick_config.json`` for writing.

    Raises :class:`InputError` (one line) for what :meth:`CopickProject.open` refuses (a missing or unreadable
    file, no ``overlay_root``, a remote root), a project of another kind (the data portal), a config without a
    ``pickable_objects`` list, or an overlay root that is not a folder.
    """
    project = CopickProject.open(config_path)
    config = json.loads(project.config.read_text())
    kind = config.get("config_type", "filesystem")
    if kind != "filesystem":
        raise InputError(f"copick config '{project.config}' is a {kind!r} project; tomocam writes into filesystem "
                         "projects")
    if not isinstance(config.get("pickable_objects", []), list):
        raise InputError(f"copick config '{project.config}' is not a copick config (pickable_objects is no list)")
    if not project.roots[0].is_dir():
        raise InputError(f"copick config '{project.config}': overlay_root {str(project.roots[0])!r} is not a folder")
    return WritableProject(project, config)
