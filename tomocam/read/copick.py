"""Find a tomogram in a local copick project (copick's filesystem layout, read without copick itself).

A copick project is a ``copick_config.json`` whose ``overlay_root`` (writable) and ``static_root`` (read-only,
optional) are ``local:///path`` URLs (or plain paths). A tomogram is the OME-NGFF 0.4 image (zarr v2)
``<root>/ExperimentRuns/<run>/VoxelSpacing<spacing, 3 decimals>/<tomo type>.zarr``, looked up in the overlay
root first, then in the static one, as copick does. Open it with :func:`tomocam.read.open_tomogram`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tomocam.errors import InputError

#: Prefix of a local copick root URL.
LOCAL = "local://"


@dataclass(frozen=True)
class CopickProject:
    """A local copick project: its config file and its roots, overlay first."""

    config: Path
    roots: tuple[Path, ...]

    @classmethod
    def open(cls, config: str | Path) -> CopickProject:
        """Read the project config ``config``. Raises :class:`InputError` for a missing or malformed file, a
        config without ``overlay_root``, or a root that is not on the local filesystem."""
        config = Path(config).absolute()
        try:
            data = json.loads(config.read_text())
        except OSError as err:
            raise InputError(f"copick config '{config}' cannot be read: {err.strerror}") from None
        except ValueError as err:
            raise InputError(f"copick config '{config}' is not valid JSON: {str(err).splitlines()[0]}") from None
        if not isinstance(data, dict) or not data.get("overlay_root"):
            raise InputError(f"copick config '{config}' has no 'overlay_root'; is it a copick project config?")
        urls = [data["overlay_root"]] + ([data["static_root"]] if data.get("static_root") else [])
        return cls(config, tuple(dict.fromkeys(_local_root(str(u), config) for u in urls)))

    def runs(self) -> list[str]:
        """Names of the project's runs (folders of ``ExperimentRuns`` in any root), sorted."""
        return sorted({p.name for r in self.roots for p in (r / "ExperimentRuns").glob("*") if p.is_dir()})

    def tomogram(self, run: str, tomo_type: str, voxel_spacing: float) -> Path:
        """The OME-Zarr image of tomogram ``tomo_type`` of ``run`` at ``voxel_spacing`` angstrom. Raises
        :class:`InputError` naming what the project has when it has no such tomogram."""
        relative = Path("ExperimentRuns", run, f"VoxelSpacing{voxel_spacing:.3f}", f"{tomo_type}.zarr")
        for root in self.roots:
            if (root / relative).is_dir():
                return root / relative
        if run not in self.runs():
            raise InputError(f"copick project '{self.config}' has no run '{run}'; runs: "
                             f"{', '.join(self.runs()) or 'none'}")
        found = sorted({f"{p.parent.name.removeprefix('VoxelSpacing')} {p.name.removesuffix('.zarr')}"
                        for r in self.roots for p in (r / "ExperimentRuns" / run).glob("VoxelSpacing*/*.zarr")
                        if not p.name.endswith("_features.zarr")})
        raise InputError(f"copick run '{run}' has no tomogram '{tomo_type}' at voxel spacing {voxel_spacing:.3f}; "
                         f"it has (spacing, type): {', '.join(found) or 'none'}")


def _local_root(url: str, config: Path) -> Path:
    """The folder of a copick root URL: ``local:///abs/path``, ``file:///abs/path`` (fsspec's name for the same)
    or a plain path (relative to the config's folder)."""
    if "://" in url and not url.startswith((LOCAL, "file://")):
        raise InputError(f"copick config '{config}' has root '{url}'; tomocam reads local projects only "
                         f"('{LOCAL}/path')")
    path = Path(url.removeprefix(LOCAL).removeprefix("file://"))
    return path if path.is_absolute() else config.parent / path
