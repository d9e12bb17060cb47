"""Writing an explain store: the one object through which a run writes, from phase 1 to the completion marker.

:class:`StoreWriter` is opened once per run from a :class:`tomocam.store.spec.StoreSpec` (:meth:`StoreWriter.open`
creates the store, or checks it on ``--resume``) and travels to every task (it pickles as its spec and opens the
store per call, which is cheap and safe in any worker process). It gives phase 1 its tile arrays and ``done``
markers, phase 2 its level arrays, finalize the scores and OME-Zarr metadata, and keeps the manifest of whole
arrays (:mod:`tomocam.store.manifest`) in step: an array is forgotten before it is rewritten and recorded after
its last chunk, and the completion marker comes last. Every zarr path of the layout (:mod:`tomocam.store.layout`)
is named here or in :mod:`tomocam.store.create`, nowhere in the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

from tomocam.classes import background_indices
from tomocam.store import ome
from tomocam.store.create import heatmap_levels, label_levels, open_or_create, phase2_arrays, prepare_output
from tomocam.store.damage import damaged_chunks, remove_chunks
from tomocam.store.layout import LABEL_BOUNDS, atomic_writes
from tomocam.store.manifest import (
    forget_whole,
    is_whole,
    record_whole,
    update_attrs,
    whole_arrays,
    write_completion_marker,
)
from tomocam.store.pyramid import write_scores
from tomocam.store.spec import StoreSpec
from tomocam.tile import Block

#: Chunks are written whole: zarr's check for all-zero (fill-value) chunks, to skip them, costs a pass over the data.
_WHOLE_CHUNKS = {"write_empty_chunks": True}

#: The scores finalize derives from ``tiles/logits``.
SCORES = ["scores/logits", "scores/probabilities"]


def _level_box(lo: tuple[int, ...], shape: tuple[int, ...], level: int) -> tuple[slice, ...]:
    """Where a box ``[lo, lo + shape)`` of level 0 (``lo`` a multiple of ``2**level``) lands at ``level``."""
    return tuple(slice(a >> level, (a >> level) + (n >> level)) for a, n in zip(lo, shape))


class StoreWriter:
    """The writing side of the explain store ``spec.path`` (see the module docstring)."""

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec

    @classmethod
    def open(cls, spec: StoreSpec, *, resume: bool, overwrite: bool, command: str) -> StoreWriter:
        """Check the output path (:func:`tomocam.store.create.prepare_output`), then create the store with every
        array empty, or on ``resume`` check that the store there belongs to ``spec``; ``command`` is recorded."""
        prepare_output(spec.path, resume=resume, overwrite=overwrite)
        open_or_create(spec, resume=resume, command=command)
        writer = cls(spec)
        if resume:
            writer.drop_damaged_chunks()
        return writer

    def drop_damaged_chunks(self) -> dict[str, int]:
        """Remove the chunks a failed write left (:mod:`tomocam.store.damage`: empty, short, undecodable), so that
        they read as absent, and undo what they stood for; returns ``{array: chunks removed}``.

        A block whose tile chunks were damaged loses its ``done`` marker (recomputed), and every damaged array
        is forgotten from the manifest, with everything derived from ``tiles/`` when a tile array was damaged, so
        the manifest never lists an array holding such a chunk. Markers and manifest change before any chunk is
        removed: a run stopped in between leaves blocks to recompute, never a block marked done without its data.
        """
        spec, root = self.spec, self._root()
        names = [f"tiles/{n}" for n in root["tiles"].array_keys()] + phase2_arrays(spec)
        names += [name for name in SCORES if name in root]
        found = {name: damaged_chunks(root[name]) for name in names}
        found = {name: chunks for name, chunks in found.items() if chunks}
        if not found:
            return {}
        with atomic_writes():
            done = root["tiles/done"]
        nd = len(spec.block)
        for name, chunks in found.items():
            if not name.startswith("tiles/") or name == "tiles/done":
                continue
            edges = root[name].chunks[:nd]
            for index in chunks:  # the blocks holding the chunk's tiles
                done[tuple(slice(i * e // b, -(-(i + 1) * e // b)) for i, e, b in zip(index, edges, spec.block))] = 0
        derived = [n for n in whole_arrays(spec.path) if not n.startswith("tiles/")] if any(
            n.startswith("tiles/") for n in found) else []
        forget_whole(spec.path, *found, *derived)
        for name, chunks in found.items():
            remove_chunks(root[name], chunks)
        return {name: len(chunks) for name, chunks in found.items()}

    @property
    def path(self) -> str:
        """The store's path."""
        return self.spec.path

    def _root(self, mode: str = "r+") -> zarr.Group:
        return zarr.open_group(self.spec.path, mode=mode)

    # phase 1: tile arrays and done markers

    def done_blocks(self) -> set[tuple[int, ...]]:
        """Indices of the phase-1 blocks whose ``done`` marker is set."""
        done = np.asarray(self._root("r")["tiles/done"][...])
        return {tuple(int(i) for i in idx) for idx in np.argwhere(done == 1)}

    def block_peak(self, block: Block) -> float:
        """The largest value of the label method's maps in ``block`` (a block done before a ``--resume``)."""
        return float(np.asarray(self._root("r")[f"tiles/{LABEL_BOUNDS}"][block.grid_slices])[..., 0].max())

    def write_block(self, block: Block, logits: np.ndarray, bounds: np.ndarray, maps: Mapping[str, np.ndarray]) -> None:
        """Write ``block``'s results into the chunks of ``tiles/`` that are its own, then its ``done`` marker (last,
        so a block is either done or recomputed in full). ``logits`` ``(n, K)``, ``bounds`` ``(n, k, 2)`` and
        ``maps[method]`` ``(n, k, *feat)`` hold the block's ``n`` tiles in C order."""
        tiles = self._root()["tiles"]
        region = block.grid_slices
        tiles["logits"].with_config(_WHOLE_CHUNKS)[region] = logits.reshape(*block.shape, -1)
        tiles[LABEL_BOUNDS].with_config(_WHOLE_CHUNKS)[region] = bounds.reshape(*block.shape, *bounds.shape[1:])
        for method, values in maps.items():
            tiles[method].with_config(_WHOLE_CHUNKS)[region] = values.reshape(*block.shape, *values.shape[1:])
        with atomic_writes():  # the marker's chunk is whole or absent, whatever kills the run
            done = tiles["done"]
        done[tuple(slice(i, i + 1) for i in block.index)] = 1

    def record_tiles_whole(self) -> None:
        """Record every array of ``tiles/`` whole: call once every block is done."""
        tiles = self._root("r")["tiles"]
        record_whole(self.spec.path, *[f"tiles/{name}" for name in tiles.array_keys()])

    # phase 2: level arrays

    def start_stitching(self) -> bool:
        """Whether phase 2 must (re)write its arrays: False when the manifest proves every level whole (a resumed
        run that got past phase 2). When True, everything derived from the levels is forgotten, to be rebuilt."""
        if is_whole(self.spec.path, phase2_arrays(self.spec)):
            return False
        forget_whole(self.spec.path, *[n for n in whole_arrays(self.spec.path) if not n.startswith("tiles/")])
        return True

    def tile_maps(self, method: str, tiles: tuple[slice, ...], classes: slice) -> np.ndarray:
        """The maps ``(*t, g, *feat)`` of ``method`` of the tiles ``tiles`` (grid ranges) and ``classes`` (zarr
        decodes only those)."""
        return np.asarray(self._root("r")[f"tiles/{method}"][tiles + (classes,)])

    def tile_bounds(self, tiles: tuple[slice, ...]) -> np.ndarray:
        """The label method's map bounds ``(*t, k, 2)`` of the tiles ``tiles`` (grid ranges)."""
        return np.asarray(self._root("r")[f"tiles/{LABEL_BOUNDS}"][tiles])

    def write_heatmaps(self, method: str, classes: slice, lo: tuple[int, ...], pyramid: list[np.ndarray]) -> None:
        """Write ``pyramid[n]`` ``(g, *s >> n)``, the ``classes`` of the heatmap box starting at level-0 sample
        ``lo``, into level ``n`` of ``method`` for every level (stored as the spec's heatmap dtype)."""
        group = self._root()[method]
        shape = pyramid[0].shape[1:]
        for level, values in enumerate(pyramid):
            array = group[str(level)].with_config(_WHOLE_CHUNKS)
            array[(classes,) + _level_box(lo, shape, level)] = values.astype(self.spec.heatmap_dtype, copy=False)

    def write_labels(self, lo: tuple[int, ...], pyramid: list[np.ndarray]) -> None:
        """Write ``pyramid[n]`` ``(*s >> n)``, the label box starting at voxel ``lo``, into label level ``n``."""
        seg = self._root()["labels/segmentation"]
        for level, values in enumerate(pyramid):
            seg[str(level)][_level_box(lo, pyramid[0].shape, level)] = values

    def record_stitched_whole(self) -> None:
        """Record every level of the heatmaps and labels whole: call once every phase-2 task is done."""
        record_whole(self.spec.path, *phase2_arrays(self.spec))

    # finalize: scores, OME metadata, completion

    def write_ome_metadata(self) -> None:
        """The OME-Zarr attributes of every heatmap image (with contrast limits from its coarsest level, about one
        chunk a class) and of the label image; rewritten every time."""
        spec = self.spec
        root = self._root()
        levels = heatmap_levels(spec)
        names = list(spec.class_names)
        for method in spec.methods:
            group = root[method]
            coarsest = np.asarray(group[str(levels - 1)][...], dtype=np.float32)  # (k, ...) small
            lo, hi = float(coarsest.min()), float(coarsest.max())
            group.attrs["ome"] = ome.image_metadata(method, spec.voxel_size, levels, names, (lo, hi),
                                                    spec.sampling.step, spec.sampling.offset)
        labels = root["labels"]
        labels.attrs["ome"] = {"version": ome.NGFF_VERSION, "labels": ["segmentation"]}
        labels["segmentation"].attrs["ome"] = ome.label_metadata("segmentation", spec.voxel_size, label_levels(spec),
                                                                 names, f"../../{spec.label_method}")

    def write_scores(self) -> None:
        """Per-tile ``scores/logits`` and ``scores/probabilities`` from ``tiles/logits``, with where each tile sits;
        skipped when the manifest proves them whole, else rewritten in full and then recorded."""
        spec, root = self.spec, self._root()
        scores = root.require_group("scores")
        if not is_whole(spec.path, SCORES):
            forget_whole(spec.path, *SCORES)
            write_scores(root["tiles"]["logits"], scores)
            record_whole(spec.path, *SCORES)
        grid = spec.tile_grid
        scores.attrs.update(
            {
                "classes": list(spec.model_classes),
                "axes": ["c", "z", "y", "x"],
                "scale": [s * v for s, v in zip(grid.stride, spec.voxel_size)],
                "translation": [(t - 1) / 2 * v for t, v in zip(grid.tile, spec.voxel_size)],
                "unit": "angstrom",
                "tile_starts": [s.tolist() for s in grid.starts],
                "note": "the last tile on each axis is clamped to the edge: its start is in tile_starts",
            }
        )

    def record_labels(self, threshold: float, fraction: float) -> dict[str, Any]:
        """Record how the label image was made (method, threshold, fraction, ignored classes); returns the
        attributes added."""
        names = list(self.spec.class_names)
        fields = {"labels": {"method": self.spec.label_method, "threshold": threshold, "fraction": fraction,
                             "ignored": [names[i] for i in background_indices(names)]}}
        update_attrs(self.spec.path, **fields)
        return fields

    def probabilities(self) -> np.ndarray:
        """Per-tile class probabilities ``(K, gz, gy, gx)`` (written by :meth:`write_scores`)."""
        return np.asarray(self._root("r")["scores/probabilities"][...])

    def complete(self, timings: dict[str, float]) -> None:
        """Record the run's ``timings`` (seconds per step), then the completion marker: the last write of a run,
        refused unless every array is recorded whole."""
        update_attrs(self.spec.path, timings=timings)
        write_completion_marker(self.spec.path)
