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
the config as JSON and writes the files copick reads.
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

#: Characters copick refuses in object, user, session and feature names (``copick.util.escape.sanitize_name``).
_INVALID = re.compile(r'[<>:"/\\|?*\x00-\x1F\x7F\s_]')

#: Protocols of ``overlay_root`` / ``static_root`` that name a local folder (fsspec's local filesystem).
_LOCAL = ("local://", "file://", "local:", "file:")


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
class CopickProject:
    """A copick filesystem project opened from its config file (see :func:`open_project`)."""

    config_path: Path
    config: dict[str, Any]
    overlay: Path
    static: Path

    @property
    def objects(self) -> list[dict[str, Any]]:
        """The config's ``pickable_objects`` (name, is_particle, label, radius, ...)."""
        return list(self.config.get("pickable_objects") or [])

    def run_dirs(self, run: str) -> list[Path]:
        """The run's folders that exist, static first (copick lists the union of both roots)."""
        dirs = [self.static / "ExperimentRuns" / run, self.overlay / "ExperimentRuns" / run]
        return [d for d in dict.fromkeys(dirs) if d.is_dir()]

    def runs(self) -> list[str]:
        """Names of the project's runs, both roots together."""
        names = {p.name for root in {self.static, self.overlay} if (root / "ExperimentRuns").is_dir()
                 for p in (root / "ExperimentRuns").iterdir() if p.is_dir() and not p.name.startswith(".")}
        return sorted(names)

    def overlay_run(self, run: str) -> Path:
        """Where new results of ``run`` go (``overlay_root/ExperimentRuns/<run>``)."""
        return self.overlay / "ExperimentRuns" / run

    def tomograms(self, run: str, voxel_size: float) -> dict[str, Path]:
        """Tomogram type -> its ``.zarr`` folder at ``voxel_size`` in ``run`` (overlay wins over static)."""
        found: dict[str, Path] = {}
        for run_dir in self.run_dirs(run):
            folder = run_dir / voxel_folder(voxel_size)
            if folder.is_dir():
                for p in folder.glob("*.zarr"):
                    if p.is_dir() and "features" not in p.name and not p.name.startswith("."):
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

    def with_objects(self, objects: Sequence[Mapping[str, Any]]) -> CopickProject:
        """The same project with ``objects`` appended to ``pickable_objects`` (in memory; see :meth:`save`)."""
        config = dict(self.config)
        config["pickable_objects"] = [*self.objects, *(dict(o) for o in objects)]
        return CopickProject(self.config_path, config, self.overlay, self.static)

    def save(self) -> None:
        """Write the config back to its file atomically (a temporary file renamed over it), keeping every key."""
        partial = self.config_path.with_name(f".{self.config_path.name}.partial")
        try:
            partial.write_text(json.dumps(self.config, indent=4) + "\n")
            os.replace(partial, self.config_path)
        except OSError as err:
            partial.unlink(missing_ok=True)
            raise OutputError(f"cannot write copick config {self.config_path}: {err.strerror or err}") from err


def _root(value: Any, config_path: Path, key: str) -> Path:
    """A ``*_root`` entry as a local folder; refuses remote filesystems."""
    text = str(value)
    for prefix in _LOCAL:
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    else:
        if "://" in text:
            raise InputError(f"copick config {config_path}: {key} {value!r} is not a local folder; tomocam writes "
                             "only into copick projects on a local or shared filesystem")
    # fsspec (which copick uses) resolves a relative root against the working directory, and so do we.
    return Path(os.path.expanduser(text)).absolute()


def open_project(config_path: str | Path) -> CopickProject:
    """Read a copick filesystem project's ``copick_config.json``.

    Raises :class:`InputError` (one line) for a missing or unreadable file, a project of another kind (the data
    portal), a remote root, or an overlay root that is not a folder.
    """
    path = Path(config_path).absolute()
    if not path.is_file():
        raise InputError(f"copick config '{path}' does not exist or is not a file")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"copick config '{path}' cannot be read as JSON: {err}") from None
    if not isinstance(config, dict) or not isinstance(config.get("pickable_objects", []), list):
        raise InputError(f"copick config '{path}' is not a copick config (no pickable_objects list)")
    kind = config.get("config_type", "filesystem")
    if kind != "filesystem":
        raise InputError(f"copick config '{path}' is a {kind!r} project; tomocam writes into filesystem projects")
    if "overlay_root" not in config:
        raise InputError(f"copick config '{path}' has no overlay_root: the folder where results are written")
    overlay = _root(config["overlay_root"], path, "overlay_root")
    static = _root(config["static_root"], path, "static_root") if config.get("static_root") else overlay
    if not overlay.is_dir():
        raise InputError(f"copick config '{path}': overlay_root {str(overlay)!r} is not a folder")
    return CopickProject(path, config, overlay, static)
