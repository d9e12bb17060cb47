"""The store's schema: group names, codecs, and where level 0 of the heatmaps samples the stitched field.

Layout of an explain store (OME-Zarr 0.5, zarr v3)::

    zarr.json                 root attributes under "tomocam": provenance, settings, sampling, the manifest
                              of whole arrays, "complete": true written last
    tiles/logits              (gz, gy, gx, K) float32 per-tile logits of every model class   } phase 1: the source
    tiles/<method>            (gz, gy, gx, k, *feat) float32 feature-resolution maps         } of truth of every
    tiles/done                (bz, by, bx) uint8 per-block markers (the resume record)        } heatmap value
    tiles/label_bounds        (gz, gy, gx, k, 2) float32 per tile and class, the largest value and the largest
                              magnitude of the label method's maps (which classes phase 2 must read for labels)
    <method>/0, 1, ...        (k, *samples) heatmaps on the native grid, then 2x pyramid levels (multiscale image)
    labels/segmentation/0, 1  (z, y, x) uint8 (uint16 beyond 254 classes) labels on the tomogram's grid
    scores/logits, probabilities  (K, gz, gy, gx) per tile

**Sampling.** The stitched field is a separable linear operator applied to the per-tile maps in ``tiles/``
(:mod:`tomocam.stitch.blend`): resize (linear interpolation between feature cells), a smooth window and a
division by the summed windows. The windows make it a ratio of sines, so no coarse grid reproduces it by linear
interpolation. The store therefore keeps ``tiles/`` as the source of truth and level 0 as the exact field
*sampled* every ``step`` voxels, at voxels ``step // 2 + i * step`` per axis. ``step`` defaults to
:func:`native_step`, ``gcd(stride, tile / feature size)``: the spacing on which feature cells and tile starts
put information (4 voxels for CNN-1 and CNN-2 at the default stride), so a viewer sees everything there is at
``1 / step**3`` of the full grid's bytes. The full-grid field is recomputed exactly from ``tiles/``, block by
block (:meth:`tomocam.store.ExplainStore.full_grid`).

**Per-tile maps.** ``tiles/<method>`` is chunked in cubes of :func:`tile_chunk_shape` tiles with every class
(about 1 MB) that tile each phase-1 block, so a block's task is the one writer of its chunks (a block's maps are
written whole or recomputed on ``--resume``: its ``done`` marker comes last), and phase 2 and the reader, whose
boxes of tiles straddle blocks, decode only the tiles they need. Chunks are stored uncompressed
(:data:`TILE_CODEC`). Stores of the earlier layouts read the same (zarr hides the chunking). Why these chunks and
codecs (measured): docs/architecture.md, "Design decisions".
"""

from __future__ import annotations

import math
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import zarr
from zarr.codecs import BloscCodec

#: Root attribute key of everything tomocam records.
ATTRS_KEY = "tomocam"

#: Key of the manifest of whole arrays in the root ``tomocam`` attributes (:mod:`tomocam.store.manifest`).
MANIFEST_KEY = "arrays"

#: Version of this layout (the arrays, their shapes and chunks), recorded at creation as ``layout``: ``--resume``
#: refuses a store of another version (one written before phase 2 made every pyramid level has none; version 2
#: sharded ``tiles/<method>`` by block; version 3 had no ``tiles/label_bounds``) rather than writing into arrays
#: that are missing or chunked differently. Raise it when the layout changes.
STORE_LAYOUT = 4

#: Name in ``tiles/`` of the per-tile, per-class bounds of the label method's maps: ``[..., 0]`` the largest value,
#: ``[..., 1]`` the largest magnitude (:func:`tomocam.stitch.labels.map_bounds`).
LABEL_BOUNDS = "label_bounds"

#: zarr-python's own codec pipeline, and the one tomocam reads and writes its stores with: zarrs (Rust, the same
#: format byte for byte). zarr-python hands every chunk through asyncio and a thread pool, a fixed cost per chunk
#: whatever its size; zarrs does the chunk loop natively.
DEFAULT_PIPELINE = "zarr.core.codec_pipeline.BatchedCodecPipeline"
FAST_PIPELINE = "zarrs.ZarrsCodecPipeline"


def use_fast_pipeline() -> None:
    """Make zarr use :data:`FAST_PIPELINE` in this process, unless its codec pipeline was chosen already: through
    ``ZARR_CODEC_PIPELINE__PATH``, or another pipeline set in ``zarr.config``. Arrays or features zarrs does not
    support fall back to zarr-python's pipeline (zarrs' default, non-strict mode)."""
    if "ZARR_CODEC_PIPELINE__PATH" not in os.environ and zarr.config.get("codec_pipeline.path") == DEFAULT_PIPELINE:
        zarr.config.set({"codec_pipeline.path": FAST_PIPELINE})


def atomic_writes() -> AbstractContextManager:
    """A context in which arrays are opened with zarr-python's own pipeline, which writes each chunk to a temporary
    file and renames it into place: a chunk is then whole or absent, whatever kills the process. zarrs writes a
    chunk in place (truncate, then write), so a kill can leave one cut short; that is harmless for arrays a resumed
    run rewrites, but not for the resume record ``tiles/done``, whose chunks a resumed run reads (``--resume``
    would stop on a chunk that does not decode). Open ``tiles/done`` inside this context to write it."""
    return zarr.config.set({"codec_pipeline.path": DEFAULT_PIPELINE})


#: Heatmaps (and the per-tile maps) are smooth float fields: byte shuffling + lz4 writes them ~5x faster than
#: zarr's default codec (zstd, no shuffle) and stores them as small.
HEATMAP_CODEC = BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")

#: Codec of the chunks of ``tiles/<method>``: none. Maps of trained or untrained models are dense floats that
#: compress by 10-20% at most, and decoding costs phase 2 more than the bytes.
TILE_CODEC = None

#: Bytes of one chunk of ``tiles/<method>`` to aim for: large enough that zarr's per-chunk cost (about
#: 0.1-0.5 ms) stays below the copy, small enough that a box of tiles decodes little it does not need.
TILE_CHUNK_BYTES = 1 << 20


def tile_chunk_shape(block: tuple[int, ...], tile_bytes: int) -> tuple[int, ...]:
    """Tiles per grid axis of a chunk of ``tiles/<method>`` in blocks of ``block`` tiles: the same number
    ``e`` on every axis, the largest that divides every block edge (a block holds whole chunks) and keeps
    ``e**nd`` tiles of ``tile_bytes`` within :data:`TILE_CHUNK_BYTES`; at least 1."""
    fits = [e for e in range(1, min(block) + 1)
            if all(b % e == 0 for b in block) and e ** len(block) * tile_bytes <= TILE_CHUNK_BYTES]
    return (max(fits, default=1),) * len(block)


#: Heatmap storage types. float16 keeps 11 significant bits (relative error <= 2**-11 = 4.9e-4) for values
#: above 6.1e-5 and an absolute error <= 3e-8 below (subnormals); the full-grid reader is float32 either way.
HEATMAP_DTYPES = ("float32", "float16")


def native_step(tile: int, stride: int, feat: int) -> int:
    """Voxels between native samples on one axis: ``gcd(stride, tile / feat)``, 1 if cells are not whole voxels."""
    if tile % feat:
        return 1
    return math.gcd(stride, tile // feat)


def label_dtype(n_classes: int) -> str:
    """uint8 while every class (plus 0 for none) fits, else uint16."""
    return "uint8" if n_classes < 255 else "uint16"


@dataclass(frozen=True)
class HeatmapSampling:
    """Level 0 of the heatmaps: the field at voxels ``offset + i * step`` of a tomogram of ``shape``, per axis."""

    shape: tuple[int, ...]
    step: tuple[int, ...]

    @property
    def offset(self) -> tuple[int, ...]:
        """First sampled voxel per axis: the middle of the first ``step`` voxels."""
        return tuple(s // 2 for s in self.step)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Samples per axis (the shape of level 0 without the class axis)."""
        return tuple((n - 1 - o) // s + 1 for n, o, s in zip(self.shape, self.offset, self.step))

    def positions(self, axis: int, lo: int, hi: int) -> np.ndarray:
        """Voxel indices ``(hi - lo,)`` of samples ``lo .. hi - 1`` on ``axis``."""
        return self.offset[axis] + self.step[axis] * np.arange(lo, hi)

    def voxel_box(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The voxels ``[vlo, vhi)`` that samples ``[lo, hi)`` stand for: ``step`` voxels each, and the last sample
        of an axis also every voxel after it. Boxes of neighbouring sample boxes tile the tomogram."""
        vlo = tuple(a * s for a, s in zip(lo, self.step))
        vhi = tuple(n if b == m else b * s for b, s, n, m in zip(hi, self.step, self.shape, self.sample_shape))
        return vlo, vhi


def n_levels_for(shape: tuple[int, ...], chunk: int) -> int:
    """Levels so that the coarsest fits about one chunk per axis (each level halves z, y, x; at least 1 level)."""
    levels = 1
    size = np.array(shape)
    while size.max() > chunk and (size // 2).min() >= 2:
        size //= 2
        levels += 1
    return levels
