"""Which arrays of a store are known to be whole: a manifest in the root attributes.

The root ``tomocam`` attributes hold ``"arrays"``: path -> shape and dtype of every array recorded whole. A
writer records an array right after its last chunk is written (:func:`record_whole`) and forgets it before
writing it again (:func:`forget_whole`), so on ``--resume`` every array is either proven whole or rebuilt. The
completion marker may only be set when every array of the store is in the manifest
(:func:`write_completion_marker`), and the reader refuses a store whose arrays disagree with it
(:func:`manifest_problems`).
"""

from __future__ import annotations

from typing import Any

import zarr

from tomocam.errors import OutputError
from tomocam.store.layout import ATTRS_KEY, MANIFEST_KEY


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


def write_completion_marker(path: str) -> None:
    """Write the completion marker: the last write of a run, allowed only once every array is recorded whole."""
    problems = manifest_problems(zarr.open_group(path, mode="r"))
    if problems:
        raise OutputError(f"store '{path}' cannot be marked complete: {'; '.join(problems)}")
    update_attrs(path, complete=True)
