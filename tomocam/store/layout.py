"""The store's schema: group names, codecs, and where level 0 of the heatmaps samples the stitched field.

Layout of an explain store (OME-Zarr 0.5, zarr v3)::

    zarr.json                 root attributes under "tomocam": provenance, settings, sampling, the manifest
                              of whole arrays, "complete": true written last
    tiles/logits              (gz, gy, gx, K) float32 per-tile logits of every model class   } phase 1: the source
    tiles/<method>            (gz, gy, gx, k, *feat) float32 feature-resolution maps         } of truth of every
    tiles/done                (bz, by, bx) uint8 per-block markers (the resume record)        } heatmap value
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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from zarr.codecs import BloscCodec

#: Root attribute key of everything tomocam records.
ATTRS_KEY = "tomocam"

#: Key of the manifest of whole arrays in the root ``tomocam`` attributes (:mod:`tomocam.store.manifest`).
MANIFEST_KEY = "arrays"

#: Heatmaps (and the per-tile maps) are smooth float fields: byte shuffling + lz4 writes them ~5x faster than
#: zarr's default codec (zstd, no shuffle) and stores them as small (measured: 242 MB vs 243 MB for 23 classes of
#: 96x192x192).
HEATMAP_CODEC = BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")

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
class Sampling:
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
