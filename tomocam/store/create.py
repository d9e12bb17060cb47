"""Creating the explain store: checking the output path, provenance and the resume fingerprint from one place,
and every array with its schema (:mod:`tomocam.store.layout`). Which arrays are whole, and the completion
marker: :mod:`tomocam.store.manifest`.

Everything here reads a :class:`tomocam.store.spec.StoreSpec`. :func:`open_or_create` makes (or, on ``--resume``,
checks) the whole store before phase 1, so every later write (through :class:`tomocam.store.writer.StoreWriter`)
goes into an array whose shape, chunks and codec are fixed here.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr

from tomocam.errors import OutputError
from tomocam.store.layout import (
    ATTRS_KEY,
    HEATMAP_CODEC,
    LABEL_BOUNDS,
    MANIFEST_KEY,
    STORE_LAYOUT,
    TILE_CODEC,
    label_dtype,
    n_levels_for,
    tile_chunk_shape,
)
from tomocam.store.lock import LOCK_FILES
from tomocam.store.manifest import update_attrs
from tomocam.store.ome import dimension_names
from tomocam.store.spec import StoreSpec

#: What a run does with its output path: create it, continue the store there, or replace what is there.
OutputAction = Literal["create", "resume", "overwrite"]


def check_output(path: str | Path, *, resume: bool, overwrite: bool) -> OutputAction:
    """What a run would do with ``path``, found without touching the disk (``--dry-run`` and every real run).

    An existing path is an :class:`OutputError` unless ``resume`` (a zarr store, reused) or ``overwrite`` (deleted
    first); so is a path whose nearest existing folder cannot be written to.
    """
    path = Path(path).expanduser().absolute()
    if _holds_output(path):
        if resume:
            if not (path / "zarr.json").is_file():
                raise OutputError(f"cannot resume '{path}': it is not a zarr store")
            return "resume"
        if not overwrite:
            raise OutputError(f"output '{path}' exists already; pass --resume to continue it or --overwrite "
                              f"to replace it")
    folder = next(p for p in path.parents if p.exists())  # the missing folders below it are created
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write output '{path}': folder '{folder}' is not writable")
    return "overwrite" if _holds_output(path) else "create"


def _holds_output(path: Path) -> bool:
    """Whether ``path`` holds an output: it exists, and is more than a folder holding the writer lock alone
    (:mod:`tomocam.store.lock`: this run's, taken before the first write)."""
    if not path.exists():
        return False
    names = set(os.listdir(path)) if path.is_dir() else set()
    return not (names and names <= LOCK_FILES)


def _clear(path: Path) -> None:
    """Delete ``path``; of a folder holding the writer lock, every entry but the lock's files."""
    if not path.is_dir() or path.is_symlink():
        path.unlink()
        return
    if not LOCK_FILES & set(os.listdir(path)):
        shutil.rmtree(path)
        return
    for entry in path.iterdir():
        if entry.name not in LOCK_FILES:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def _move_into_place(built: str, path: str) -> None:
    """Move the store folder ``built`` to ``path``, whole; a folder at ``path`` holding only the writer lock
    (see :func:`_holds_output`) gives its lock to the store first."""
    if os.path.isdir(path):
        for name in os.listdir(path):
            os.replace(os.path.join(path, name), os.path.join(built, name))
    os.replace(built, path)


def prepare_output(path: str | Path, *, resume: bool, overwrite: bool) -> str:
    """Check ``path`` as :func:`check_output` does, then make it ready (delete what ``overwrite`` replaces, create
    the folders above it and probe that a file can be written there); returns it as an absolute string."""
    action = check_output(path, resume=resume, overwrite=overwrite)
    path = Path(path).expanduser().absolute()
    if action == "resume":
        return str(path)
    if action == "overwrite":
        try:
            _clear(path)
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


def fingerprint(spec: StoreSpec) -> dict[str, Any]:
    """The settings a resumed run must share with the run it continues."""
    return {
        "input": [spec.input_path, list(spec.shape), list(spec.voxel_size)],
        "model_sha256": spec.model_sha256,
        "layer": spec.layer,
        "methods": list(spec.methods),
        "classes": list(spec.class_indices),
        "tile": list(spec.tile_grid.tile),
        "stride": list(spec.tile_grid.stride),
        "model_input": list(spec.model_input),
        "block": list(spec.block),
        "normalisation": spec.normalisation,
        "invert": spec.invert,
        "window": spec.window,
        "chunk": spec.chunk,
        "step": list(spec.sampling.step),
        "heatmap_dtype": spec.heatmap_dtype,
        "autocast": spec.autocast,
    }


def provenance(spec: StoreSpec, command: str) -> dict[str, Any]:
    """The root attributes of a new store: what ran, on what, with which settings, and how level 0 samples."""
    from tomocam import __version__

    return {
        "version": __version__,
        "layout": STORE_LAYOUT,
        "command": command,
        "model": {"path": spec.model_path, "sha256": spec.model_sha256},
        "classes": list(spec.class_names),
        "model_classes": list(spec.model_classes),
        "layer": spec.layer,
        "methods": list(spec.methods),
        "tile": list(spec.tile_grid.tile),
        "stride": list(spec.tile_grid.stride),
        "window": spec.window,
        "block": list(spec.block),
        "feature_shape": list(spec.feature_shape),
        "model_input": list(spec.model_input),
        "normalisation": spec.normalisation,
        "invert": spec.invert,
        "chunk": spec.chunk,
        "sampling": {"step": list(spec.sampling.step), "offset": list(spec.sampling.offset)},
        "heatmap_dtype": spec.heatmap_dtype,
        "levels": heatmap_levels(spec),
        "input": {"path": spec.input_path, "shape": list(spec.shape), "voxel_size": list(spec.voxel_size),
                  "dtype": spec.input_dtype},
        "fingerprint": fingerprint(spec),
    }


def _halvings(n: int) -> int:
    """How many times ``n`` halves exactly (its number of factors 2)."""
    return (n & -n).bit_length() - 1


def heatmap_levels(spec: StoreSpec) -> int:
    """Pyramid levels of the heatmaps: halving the native grid until it fits about one chunk, at most as many
    times as the chunk edge halves exactly (phase 2 writes level ``n`` in chunks of ``chunk >> n``, see
    :func:`heatmap_chunks`)."""
    return min(n_levels_for(spec.sampling.sample_shape, spec.chunk), 1 + _halvings(spec.chunk))


def heatmap_chunks(spec: StoreSpec, level: int) -> tuple[int, ...]:
    """Chunk shape ``(1, *edge)`` of heatmap ``level``: ``chunk >> level`` samples per axis, so a phase-2 task
    (one level-0 chunk) owns whole chunks at every level."""
    return (1, *(spec.chunk >> level,) * len(spec.sampling.step))


def label_levels(spec: StoreSpec) -> int:
    """Pyramid levels of the label image (on the tomogram's grid), at most as many halvings as a phase-2 task's
    box (``chunk * step`` voxels per axis) allows exactly (see :func:`label_chunks`)."""
    exact = min(_halvings(spec.chunk * s) for s in spec.sampling.step)
    return min(n_levels_for(spec.shape, spec.chunk), 1 + exact)


def label_chunks(spec: StoreSpec, level: int) -> tuple[int, ...]:
    """Chunk shape of label ``level``: at most ``chunk`` voxels per axis and dividing a phase-2 task's box there
    (``(chunk * step) >> level``), so each task owns whole chunks at every level."""
    return tuple(math.gcd(spec.chunk, (spec.chunk * s) >> level) for s in spec.sampling.step)


def _create_arrays(root: zarr.Group, spec: StoreSpec) -> None:
    """Every array the pipeline writes, empty: ``tiles/`` (phase 1), every level of the heatmaps and the labels
    (phase 2). ``scores/`` is made by finalize from ``tiles/logits``."""
    grid, block = spec.tile_grid.grid_shape, spec.block
    k_all, k = len(spec.model_classes), len(spec.class_indices)
    tiles = root.create_group("tiles")
    # Chunks that tile each block (one per block for the logits, of a few tiles for the maps): each phase-1 task
    # writes exactly its own.
    tiles.create_array("logits", shape=(*grid, k_all), chunks=(*block, k_all), dtype="float32", fill_value=0.0)
    maps = (k, *spec.feature_shape)
    cube = tile_chunk_shape(block, 4 * int(np.prod(maps)))
    for method in spec.methods:
        tiles.create_array(method, shape=(*grid, *maps), chunks=(*cube, *maps),
                           dtype="float32", fill_value=0.0, compressors=TILE_CODEC)
    tiles.create_array(LABEL_BOUNDS, shape=(*grid, k, 2), chunks=(*block, k, 2), dtype="float32", fill_value=0.0)
    tiles.create_array("done", shape=spec.block_grid, chunks=(1,) * len(block), dtype="uint8", fill_value=0)
    samples = spec.sampling.sample_shape
    for method in spec.methods:
        group = root.create_group(method)
        for level in range(heatmap_levels(spec)):
            group.create_array(str(level), shape=(k, *(n >> level for n in samples)),
                               chunks=heatmap_chunks(spec, level), dtype=spec.heatmap_dtype, fill_value=0.0,
                               compressors=HEATMAP_CODEC, dimension_names=dimension_names(channel=True))
    seg = root.create_group("labels").create_group("segmentation")
    for level in range(label_levels(spec)):
        seg.create_array(str(level), shape=tuple(n >> level for n in spec.shape),
                         chunks=label_chunks(spec, level), dtype=label_dtype(k), fill_value=0,
                         dimension_names=dimension_names(channel=False))


def open_or_create(spec: StoreSpec, *, resume: bool, command: str) -> None:
    """Create the store and its arrays, or on ``--resume`` check that the existing one belongs to ``spec``
    (``command``: the command line, recorded)."""
    existing = Path(spec.path, "zarr.json").is_file()
    if resume and existing:
        root = zarr.open_group(spec.path, mode="r+")
        attrs = root.attrs.get(ATTRS_KEY, {})
        old = attrs.get("fingerprint")
        new = fingerprint(spec)
        if old is None or "tiles" not in root:
            raise OutputError(f"cannot resume '{spec.path}': it is not a tomocam explain store")
        layout = attrs.get("layout")
        if layout != STORE_LAYOUT:
            raise OutputError(
                f"cannot resume '{spec.path}': it has store layout {'1 (none recorded)' if layout is None else layout}"
                f", this tomocam writes layout {STORE_LAYOUT}; rerun with --overwrite"
            )
        differ = [k for k in new if old.get(k) != new[k]]
        if differ:
            raise OutputError(
                f"cannot resume '{spec.path}': its run had other settings ({', '.join(differ)}); "
                "use the same options, or --overwrite"
            )
        remove_partial_writes(spec.path)
        update_attrs(spec.path, complete=False, command=command)
        return
    # Built beside its final path and moved there whole, so a store at that path always has all its arrays.
    partial = f"{spec.path}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    root = create_root(partial, provenance(spec, command))
    _create_arrays(root, spec)
    _move_into_place(partial, spec.path)


#: zarr-python writes a file as ``<stem>.<32 hex digits>.partial`` and renames it into place; a run killed between
#: the two leaves the temporary file behind, which zarr then warns about on every listing of the store.
_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


def remove_partial_writes(store: str) -> int:
    """Delete the temporary files of writes a killed run left unfinished in ``store``; returns how many. Their
    targets were never replaced, so nothing else changes."""
    removed = 0
    for folder, _, files in os.walk(store):
        for name in files:
            if _PARTIAL.search(name):
                Path(folder, name).unlink(missing_ok=True)
                removed += 1
    return removed


def phase2_arrays(spec: StoreSpec) -> list[str]:
    """Store paths of the arrays phase 2 writes: every level of the heatmaps and of the labels."""
    heat = [f"{m}/{n}" for m in spec.methods for n in range(heatmap_levels(spec))]
    return heat + [f"labels/segmentation/{n}" for n in range(label_levels(spec))]
