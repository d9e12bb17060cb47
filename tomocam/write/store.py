"""The explain store on disk: creating it, the completion marker, and the reader API other commands use.

Layout: ``respond/`` and ``gradcam/`` multiscale heatmaps ``(c, z, y, x)``; ``scores/`` per-tile logits and
probabilities ``(k, gz, gy, gx)``; ``labels/segmentation/``; ``tiles/`` (phase-1 results and the resume record);
root attributes under ``"tomocam"`` with ``"complete": true`` written last.

Integrity: the root attributes hold a manifest (``"arrays"``: path -> shape and dtype) of the arrays known to be
whole. A writer records an array right after its last chunk is written (:func:`record_whole`) and forgets it
before writing it again (:func:`forget_whole`), so on ``--resume`` every array is either proven whole or rebuilt.
The completion marker may only be set when every array of the store is in the manifest, and :func:`open_store`
refuses a store whose arrays disagree with it (one missing, unrecorded, or of another shape or dtype).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import zarr

from tomocam.errors import InputError, OutputError

ATTRS_KEY = "tomocam"
#: Key of the manifest of whole arrays in the root ``tomocam`` attributes.
MANIFEST_KEY = "arrays"


def prepare_output(path: str | Path, *, resume: bool, overwrite: bool) -> str:
    """Check that ``path`` may be written and return it as an absolute string.

    An existing path is an :class:`OutputError` unless ``resume`` (reuse it) or ``overwrite`` (delete it first);
    a folder that cannot be written to is an :class:`OutputError` too.
    """
    path = Path(path).expanduser().absolute()
    if path.exists():
        if resume:
            if not (path / "zarr.json").is_file():
                raise OutputError(f"cannot resume '{path}': it is not a zarr store")
            return str(path)
        if not overwrite:
            raise OutputError(f"output '{path}' exists already; pass --resume to continue it or --overwrite to replace it")
        try:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError as err:
            raise OutputError(f"cannot remove existing output '{path}': {err.strerror}") from None
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".tomocam-write-test-{path.name}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise OutputError(f"cannot write output '{path}': folder '{parent}' is not writable ({err.strerror})") from None
    return str(path)


def create_root(path: str, attrs: dict[str, Any]) -> zarr.Group:
    """Create the store's root group with provenance ``attrs``, ``complete: false`` and an empty manifest."""
    return zarr.open_group(
        path, mode="w", zarr_format=3, attributes={ATTRS_KEY: {**attrs, MANIFEST_KEY: {}, "complete": False}}
    )


def update_attrs(path: str, **fields: Any) -> None:
    """Merge ``fields`` into the root ``tomocam`` attributes."""
    root = zarr.open_group(path, mode="r+")
    root.attrs[ATTRS_KEY] = {**root.attrs[ATTRS_KEY], **fields}


def _describe(array: zarr.Array) -> dict[str, Any]:
    """What the manifest records of an array: its shape and dtype."""
    return {"shape": list(array.shape), "dtype": str(array.dtype)}


def whole_arrays(path: str) -> dict[str, dict[str, Any]]:
    """The manifest: path -> ``{"shape", "dtype"}`` of every array recorded whole."""
    attrs = zarr.open_group(path, mode="r").attrs.get(ATTRS_KEY, {})
    return dict(attrs.get(MANIFEST_KEY, {}))


def is_whole(path: str, names: list[str]) -> bool:
    """True when every array in ``names`` exists and matches its manifest record."""
    root = zarr.open_group(path, mode="r")
    manifest = whole_arrays(path)
    return all(n in manifest and n in root and _describe(root[n]) == manifest[n] for n in names)


def record_whole(path: str, *names: str) -> None:
    """Record the arrays ``names`` as whole (one write of the root attributes): call after their last chunk."""
    root = zarr.open_group(path, mode="r+")
    attrs = root.attrs[ATTRS_KEY]
    manifest = {**attrs.get(MANIFEST_KEY, {}), **{n: _describe(root[n]) for n in names}}
    root.attrs[ATTRS_KEY] = {**attrs, MANIFEST_KEY: manifest}


def forget_whole(path: str, *names: str) -> None:
    """Drop ``names`` from the manifest: call before writing those arrays again."""
    root = zarr.open_group(path, mode="r+")
    attrs = root.attrs[ATTRS_KEY]
    manifest = {n: r for n, r in attrs.get(MANIFEST_KEY, {}).items() if n not in names}
    root.attrs[ATTRS_KEY] = {**attrs, MANIFEST_KEY: manifest}


def manifest_problems(root: zarr.Group) -> list[str]:
    """How the arrays under ``root`` disagree with its manifest: one phrase per array (empty when they agree)."""
    manifest = root.attrs.get(ATTRS_KEY, {}).get(MANIFEST_KEY)
    if not isinstance(manifest, dict):
        return ["it has no manifest of whole arrays (written by an older tomocam)"]
    arrays = {name: _describe(node) for name, node in root.members(max_depth=None) if isinstance(node, zarr.Array)}
    problems = [f"array '{n}' is missing" for n in manifest if n not in arrays]
    for name, found in sorted(arrays.items()):
        if name not in manifest:
            problems.append(f"array '{name}' is not known to be whole")
        elif manifest[name] != found:
            problems.append(f"array '{name}' is {found}, its manifest says {manifest[name]}")
    return problems


def mark_complete(path: str) -> None:
    """Write the completion marker: the last write of a run, allowed only once every array is recorded whole."""
    problems = manifest_problems(zarr.open_group(path, mode="r"))
    if problems:
        raise OutputError(f"store '{path}' cannot be marked complete: {'; '.join(problems)}")
    update_attrs(path, complete=True)


@dataclass
class ExplainStore:
    """A complete explain store opened for reading (see :func:`open_store`)."""

    path: str
    root: zarr.Group

    @property
    def attrs(self) -> dict[str, Any]:
        """The root ``tomocam`` attributes: provenance, settings, timings."""
        return dict(self.root.attrs[ATTRS_KEY])

    @property
    def classes(self) -> list[str]:
        """Class names of the heatmap channels, in channel order."""
        return list(self.attrs["classes"])

    @property
    def methods(self) -> list[str]:
        """CAM methods in the store (``respond``, ``gradcam``)."""
        return list(self.attrs["methods"])

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Level-0 voxel size ``(z, y, x)`` in angstrom."""
        return tuple(self.attrs["input"]["voxel_size"])

    @property
    def input_path(self) -> str:
        return str(self.attrs["input"]["path"])

    @property
    def n_levels(self) -> int:
        return int(self.attrs["levels"])

    def heatmap(self, method: str = "respond", level: int = 0) -> zarr.Array:
        """The stitched heatmaps of ``method`` at pyramid ``level``: ``(c, z, y, x)`` float32, score units."""
        if method not in self.methods:
            raise InputError(f"store '{self.path}' has no '{method}' heatmaps; it has {', '.join(self.methods)}")
        return self._level(method, level)

    def labels(self, level: int = 0) -> zarr.Array:
        """The label image ``(z, y, x)`` uint16: 0 background, ``i + 1`` class ``i``."""
        return self._level("labels/segmentation", level)

    @cached_property
    def logits(self) -> zarr.Array:
        """Per-tile logits ``(k, gz, gy, gx)`` for all the model's classes (``attrs['model_classes']``)."""
        return self.root["scores/logits"]

    @property
    def probabilities(self) -> zarr.Array:
        return self.root["scores/probabilities"]

    def _level(self, group: str, level: int) -> zarr.Array:
        if not 0 <= level < self.n_levels:
            raise InputError(f"store '{self.path}' has pyramid levels 0..{self.n_levels - 1}; asked for {level}")
        return self.root[f"{group}/{level}"]


def open_store(path: str | Path) -> ExplainStore:
    """Open a complete explain store; :class:`InputError` if ``path`` is not one or its run did not finish."""
    path = Path(path)
    try:
        root = zarr.open_group(str(path), mode="r")
    except (FileNotFoundError, ValueError, KeyError, OSError) as err:
        raise InputError(f"'{path}' is not a zarr store: {err}") from None
    attrs = root.attrs.get(ATTRS_KEY)
    if not isinstance(attrs, dict):
        raise InputError(f"'{path}' is a zarr store but not a tomocam explain store (no '{ATTRS_KEY}' attributes)")
    if attrs.get("complete") is not True:
        raise InputError(
            f"explain store '{path}' is incomplete (its run did not finish); rerun 'tomocam explain' with --resume"
        )
    problems = manifest_problems(root)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(
            f"explain store '{path}' is damaged: {problems[0]}{more}; rerun 'tomocam explain' with --resume to rebuild it"
        )
    return ExplainStore(path=str(path), root=root)
