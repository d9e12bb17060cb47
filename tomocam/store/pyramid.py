"""Derived arrays of the store: pyramid levels of the heatmaps, the label image and its pyramid, per-tile scores.

Phase 2 makes every level of the heatmaps and labels of its box while the box is in memory
(:func:`heatmap_pyramid`, :func:`label_pyramid`), so no level is read back. Stores assembled from existing
arrays (the tests' store builder, ``bench_readers.py``) use the same functions, box by box.
"""

from __future__ import annotations

import numpy as np
import torch
import zarr
from scipy.special import softmax
from torch.nn import functional as F


def downsample_mean(block: np.ndarray) -> np.ndarray:
    """``(k, z, y, x)`` -> ``(k, z // 2, y // 2, x // 2)`` float32: means of 2x2x2 voxel groups; an odd last
    voxel is dropped (torch's pooling: multi-threaded, no temporaries)."""
    half = tuple(n // 2 for n in block.shape[1:])
    if min(half) == 0:  # an edge chunk one voxel thick: nothing to average
        return np.zeros((block.shape[0], *half), np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
    return F.avg_pool3d(tensor[None], 2)[0].numpy()


def heatmap_pyramid(samples: np.ndarray, levels: int) -> list[np.ndarray]:
    """Levels ``0 .. levels - 1`` of heatmaps ``(k, *n)``: level 0 is ``samples``, each next one the 2x2x2 means
    of the one before (:func:`downsample_mean`).

    For a box of a larger array whose first sample is a multiple of ``2**(levels - 1)`` per axis, level ``n`` is
    that box's part ``[lo >> n, (lo >> n) + (n_d >> n))`` of the whole array's level ``n``: no mean straddles two
    such boxes, so phase 2 builds every level of its chunk from memory.
    """
    out = [samples]
    for _ in range(1, levels):
        out.append(downsample_mean(out[-1]))
    return out


def label_pyramid(labels: np.ndarray, levels: int) -> list[np.ndarray]:
    """Levels ``0 .. levels - 1`` of a label image ``(*s)``: level ``n`` voxel ``i`` is level-0 voxel
    ``(2**n - 1) // 2 + i * 2**n`` (the one nearest the centre of its ``2**n`` block; labels are not averaged),
    ``s >> n`` voxels per axis.

    As :func:`heatmap_pyramid`, a box starting at a multiple of ``2**(levels - 1)`` gives its part of every level.
    """
    out = []
    for n in range(levels):
        f = 2**n
        out.append(labels[tuple(slice((f - 1) // 2, (f - 1) // 2 + (m >> n) * f, f) for m in labels.shape)])
    return out


def label_block(block, threshold: float, ignore: tuple[int, ...], dtype: str = "uint16") -> np.ndarray:
    """``(k, *s)`` heatmaps (numpy, or a tensor on any device) -> ``(*s)`` numpy labels of ``dtype``: argmax + 1
    where the max exceeds ``threshold``, else 0.

    Classes in ``ignore`` (background classes) never label a voxel.
    """
    value, best = torch.as_tensor(block).max(dim=0)  # one pass for both
    keep = value > threshold
    for i in ignore:
        keep &= best != i
    return torch.where(keep, best + 1, 0).to(getattr(torch, dtype)).cpu().numpy()


def label_threshold(peak: float, fraction: float, upsampling: float) -> float:
    """The label threshold in score units per voxel: ``fraction`` of ``peak``, the largest value any tile map
    reaches at feature resolution; dividing by ``upsampling`` (tile voxels per feature voxel) turns it into the
    per-voxel density the stitched heatmaps carry."""
    return fraction * max(peak, 0.0) / upsampling


def write_scores(tile_logits: zarr.Array, scores: zarr.Group) -> None:
    """Per-tile ``logits`` and softmax ``probabilities`` ``(k, gz, gy, gx)`` from phase-1 logits ``(gz, gy, gx, k)``.

    Plain numpy, one slab of the source's chunks along the first grid axis at a time (one writer per chunk, memory
    bounded by a slab): the values are few (k per tile), and a dask graph of them costs several times the work.
    """
    k = tile_logits.shape[-1]
    shape, chunks = (k, *tile_logits.shape[:-1]), (k, *tile_logits.chunks[:-1])
    logits_out, probs_out = (
        scores.create_array(name, shape=shape, chunks=chunks, dtype="float32", fill_value=0.0, overwrite=True)
        for name in ("logits", "probabilities")
    )
    step = tile_logits.chunks[0]
    for a in range(0, tile_logits.shape[0], step):
        logits = np.moveaxis(np.asarray(tile_logits[a : a + step], dtype=np.float32), -1, 0)  # (k, step, ...)
        logits_out[:, a : a + step] = logits
        probs_out[:, a : a + step] = softmax(logits, axis=0)
