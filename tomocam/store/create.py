"""Creating the explain store: checking the output path, provenance and the resume fingerprint from one place,
and every array with its schema (:mod:`tomocam.store.layout`). Which arrays are whole, and the completion
marker: :mod:`tomocam.store.manifest`.

The pipeline never creates arrays itself: :func:`open_or_create` makes (or, on ``--resume``, checks) the whole
store before phase 1, so every later write goes into an array whose shape, chunks and codec are fixed here.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from tomocam.store.manifest import update_attrs
from tomocam.store.ome import dimension_names

if TYPE_CHECKING:
    from tomocam.pipeline.config import ExplainConfig
    from tomocam.pipeline.plan import Plan


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
            raise OutputError(f"output '{path}' exists already; pass --resume to continue it or --overwrite "
                              f"to replace it")
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


def fingerprint(plan: Plan) -> dict[str, Any]:
    """The settings a resumed run must share with the run it continues."""
    return {
        "input": [plan.tomogram.path, list(plan.tomogram.shape), list(plan.tomogram.voxel_size)],
        "model_sha256": plan.model_sha256,
        "layer": plan.layer,
        "methods": list(plan.methods),
        "classes": list(plan.class_indices),
        "tile": list(plan.grid.tile),
        "stride": list(plan.grid.stride),
        "model_input": list(plan.model_input),
        "block": list(plan.block),
        "normalisation": plan.normalisation,
        "invert": plan.invert,
        "window": plan.window,
        "chunk": plan.chunk,
        "step": list(plan.sampling.step),
        "heatmap_dtype": plan.heatmap_dtype,
        "autocast": plan.autocast,
    }


def provenance(plan: Plan, command: str) -> dict[str, Any]:
    """The root attributes of a new store: what ran, on what, with which settings, and how level 0 samples."""
    from tomocam import __version__

    t = plan.tomogram
    return {
        "version": __version__,
        "layout": STORE_LAYOUT,
        "command": command,
        "model": {"path": plan.model_path, "sha256": plan.model_sha256},
        "classes": list(plan.class_names),
        "model_classes": list(plan.model_classes),
        "layer": plan.layer,
        "methods": list(plan.methods),
        "tile": list(plan.grid.tile),
        "stride": list(plan.grid.stride),
        "window": plan.window,
        "block": list(plan.block),
        "feature_shape": list(plan.feature_shape),
        "model_input": list(plan.model_input),
        "normalisation": plan.normalisation,
        "invert": plan.invert,
        "chunk": plan.chunk,
        "sampling": {"step": list(plan.sampling.step), "offset": list(plan.sampling.offset)},
        "heatmap_dtype": plan.heatmap_dtype,
        "levels": heatmap_levels(plan),
        "input": {"path": t.path, "shape": list(t.shape), "voxel_size": list(t.voxel_size), "dtype": t.dtype},
        "fingerprint": fingerprint(plan),
    }


def _halvings(n: int) -> int:
    """How many times ``n`` halves exactly (its number of factors 2)."""
    return (n & -n).bit_length() - 1


def heatmap_levels(plan: Plan) -> int:
    """Pyramid levels of the heatmaps: halving the native grid until it fits about one chunk, at most as many
    times as the chunk edge halves exactly (phase 2 writes level ``n`` in chunks of ``chunk >> n``, see
    :func:`heatmap_chunks`)."""
    return min(n_levels_for(plan.sampling.sample_shape, plan.chunk), 1 + _halvings(plan.chunk))


def heatmap_chunks(plan: Plan, level: int) -> tuple[int, ...]:
    """Chunk shape ``(1, *edge)`` of heatmap ``level``: ``chunk >> level`` samples per axis, so a phase-2 task
    (one level-0 chunk) owns whole chunks at every level."""
    return (1, *(plan.chunk >> level,) * len(plan.sampling.step))


def label_levels(plan: Plan) -> int:
    """Pyramid levels of the label image (on the tomogram's grid), at most as many halvings as a phase-2 task's
    box (``chunk * step`` voxels per axis) allows exactly (see :func:`label_chunks`)."""
    exact = min(_halvings(plan.chunk * s) for s in plan.sampling.step)
    return min(n_levels_for(plan.tomogram.shape, plan.chunk), 1 + exact)


def label_chunks(plan: Plan, level: int) -> tuple[int, ...]:
    """Chunk shape of label ``level``: at most ``chunk`` voxels per axis and dividing a phase-2 task's box there
    (``(chunk * step) >> level``), so each task owns whole chunks at every level."""
    return tuple(math.gcd(plan.chunk, (plan.chunk * s) >> level) for s in plan.sampling.step)


def _create_arrays(root: zarr.Group, plan: Plan) -> None:
    """Every array the pipeline writes, empty: ``tiles/`` (phase 1), every level of the heatmaps and the labels
    (phase 2). ``scores/`` is made by finalize from ``tiles/logits``."""
    grid, block = plan.grid.grid_shape, plan.block
    k_all, k = len(plan.model_classes), len(plan.class_indices)
    tiles = root.create_group("tiles")
    # Chunks that tile each block (one per block for the logits, of a few tiles for the maps): each phase-1 task
    # writes exactly its own.
    tiles.create_array("logits", shape=(*grid, k_all), chunks=(*block, k_all), dtype="float32", fill_value=0.0)
    maps = (k, *plan.feature_shape)
    cube = tile_chunk_shape(block, 4 * int(np.prod(maps)))
    for method in plan.methods:
        tiles.create_array(method, shape=(*grid, *maps), chunks=(*cube, *maps),
                           dtype="float32", fill_value=0.0, compressors=TILE_CODEC)
    tiles.create_array(LABEL_BOUNDS, shape=(*grid, k, 2), chunks=(*block, k, 2), dtype="float32", fill_value=0.0)
    tiles.create_array("done", shape=plan.block_grid, chunks=(1,) * len(block), dtype="uint8", fill_value=0)
    samples = plan.sampling.sample_shape
    for method in plan.methods:
        group = root.create_group(method)
        for level in range(heatmap_levels(plan)):
            group.create_array(str(level), shape=(k, *(n >> level for n in samples)),
                               chunks=heatmap_chunks(plan, level), dtype=plan.heatmap_dtype, fill_value=0.0,
                               compressors=HEATMAP_CODEC, dimension_names=dimension_names(channel=True))
    seg = root.create_group("labels").create_group("segmentation")
    for level in range(label_levels(plan)):
        seg.create_array(str(level), shape=tuple(n >> level for n in plan.tomogram.shape),
                         chunks=label_chunks(plan, level), dtype=label_dtype(k), fill_value=0,
                         dimension_names=dimension_names(channel=False))


def open_or_create(plan: Plan, config: ExplainConfig) -> None:
    """Create the store and its arrays, or on ``--resume`` check that the existing one belongs to this plan."""
    existing = Path(plan.store, "zarr.json").is_file()
    if config.resume and existing:
        root = zarr.open_group(plan.store, mode="r+")
        attrs = root.attrs.get(ATTRS_KEY, {})
        old = attrs.get("fingerprint")
        new = fingerprint(plan)
        if old is None or "tiles" not in root:
            raise OutputError(f"cannot resume '{plan.store}': it is not a tomocam explain store")
        layout = attrs.get("layout")
        if layout != STORE_LAYOUT:
            raise OutputError(
                f"cannot resume '{plan.store}': it has store layout {'1 (none recorded)' if layout is None else layout}"
                f", this tomocam writes layout {STORE_LAYOUT}; rerun with --overwrite"
            )
        differ = [k for k in new if old.get(k) != new[k]]
        if differ:
            raise OutputError(
                f"cannot resume '{plan.store}': its run had other settings ({', '.join(differ)}); "
                "use the same options, or --overwrite"
            )
        remove_partial_writes(plan.store)
        update_attrs(plan.store, complete=False, command=config.command)
        return
    # Built beside its final path and moved there whole, so a store at that path always has all its arrays.
    partial = f"{plan.store}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    root = create_root(partial, provenance(plan, config.command))
    _create_arrays(root, plan)
    os.replace(partial, plan.store)


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


def phase2_arrays(plan: Plan) -> list[str]:
    """Store paths of the arrays phase 2 writes: every level of the heatmaps and of the labels."""
    heat = [f"{m}/{n}" for m in plan.methods for n in range(heatmap_levels(plan))]
    return heat + [f"labels/segmentation/{n}" for n in range(label_levels(plan))]
