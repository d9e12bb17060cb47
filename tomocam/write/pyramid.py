"""Derived arrays of the store, built chunk by chunk with dask (bounded memory, run on the active client):
pyramid levels of the heatmaps, the label image and its pyramid, and the per-tile scores."""

from __future__ import annotations

import dask.array as da
import numpy as np
import zarr


def n_levels_for(shape: tuple[int, ...], chunk: int) -> int:
    """Levels so that the coarsest fits about one chunk per axis (each level halves z, y, x; at least 1 level)."""
    levels = 1
    size = np.array(shape)
    while size.max() > chunk and (size // 2).min() >= 2:
        size //= 2
        levels += 1
    return levels


def _store(src: da.Array, group: zarr.Group, name: str, chunks: tuple[int, ...], fill_value) -> None:
    """Write ``src`` into a new array ``group[name]`` chunk-aligned (one writer per chunk)."""
    target = group.create_array(name, shape=src.shape, chunks=chunks, dtype=src.dtype, fill_value=fill_value, overwrite=True)
    da.store(src.rechunk(chunks), target, lock=False)


def write_heatmap_pyramid(group: zarr.Group, n_levels: int) -> None:
    """Levels ``1..n_levels-1`` of an image group ``(c, z, y, x)``: 2x2x2 means of the level above."""
    for level in range(1, n_levels):
        src = da.from_zarr(group[str(level - 1)])
        down = da.coarsen(np.mean, src, {1: 2, 2: 2, 3: 2}, trim_excess=True).astype(np.float32)
        _store(down, group, str(level), group["0"].chunks, 0.0)


def label_threshold(coarsest: np.ndarray, fraction: float) -> float:
    """The label threshold in score units: ``fraction`` of the largest class value of the coarsest level."""
    peak = float(coarsest.max()) if coarsest.size else 0.0
    return fraction * max(peak, 0.0)


def _labels_block(block: np.ndarray, threshold: float, ignore: tuple[int, ...]) -> np.ndarray:
    """``(k, *s)`` heatmaps -> ``(*s)`` uint16 labels: argmax + 1 where the max exceeds ``threshold``."""
    best = block.argmax(axis=0)
    value = block.max(axis=0)
    labels = (best + 1).astype(np.uint16)
    keep = value > threshold
    for i in ignore:
        keep &= best != i
    labels[~keep] = 0
    return labels


def write_labels(
    heatmaps: zarr.Group, labels: zarr.Group, n_levels: int, threshold: float, ignore: tuple[int, ...]
) -> None:
    """The label image from level 0 of ``heatmaps`` and its nearest-neighbour pyramid, into ``labels``."""
    src = da.from_zarr(heatmaps["0"])
    k, *_ = src.shape
    chunks = tuple(heatmaps["0"].chunks[1:])
    src = src.rechunk((k, *chunks))
    lab = src.map_blocks(_labels_block, threshold, ignore, drop_axis=0, dtype=np.uint16)
    _store(lab, labels, "0", chunks, 0)
    for level in range(1, n_levels):
        shape = heatmaps[str(level)].shape[1:]
        f = 2**level
        # the label voxel nearest to the centre of each 2**level block
        off = (f - 1) // 2
        src0 = da.from_zarr(labels["0"])
        sub = src0[tuple(slice(off, off + n * f, f) for n in shape)]
        _store(sub, labels, str(level), chunks, 0)


def write_scores(tile_logits: zarr.Array, scores: zarr.Group) -> None:
    """Per-tile ``logits`` and softmax ``probabilities`` ``(k, gz, gy, gx)`` from phase-1 logits ``(gz, gy, gx, k)``."""
    src = da.from_zarr(tile_logits)
    k = src.shape[-1]
    src = src.rechunk((*src.chunksize[:-1], k))
    logits = da.moveaxis(src, -1, 0)
    shifted = logits - logits.max(axis=0, keepdims=True)
    probs = da.exp(shifted)
    probs = probs / probs.sum(axis=0, keepdims=True)
    chunks = (k, *tile_logits.chunks[:-1])
    _store(logits.astype(np.float32), scores, "logits", chunks, 0.0)
    _store(probs.astype(np.float32), scores, "probabilities", chunks, 0.0)
