"""The zarr groups of a copick export: OME-NGFF 0.4 images on zarr format 2, as copick writes them.

copick 1.31 (zarr 2) opens each group through an ``FSStore`` with ``/`` chunk keys and reads level ``0``; its own
writer (``copick/util/ome.py``) gives each group ``multiscales`` with axes ``z, y, x`` in angstrom, one ``scale``
per level and, for channel-first arrays, a leading ``c`` axis of type ``channel``, one channel per chunk. The
groups here are written with zarr-python 3 in format 2 with that metadata and copick's compressor, one chunk at a
time, so memory stays bounded whatever the tomogram's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from tomocam.arrays import blocks
from tomocam.store import ExplainStore

#: Chunk edge of the written zarr arrays: a float32 feature chunk is 8 MiB, the unit of memory of the export.
CHUNK = 128
#: The compressor copick's own writer uses (blosc lz4), readable by the numcodecs that copick pins.
_COMPRESSOR = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}


def ome_multiscales(voxel_size: float, channels: bool) -> list[dict[str, Any]]:
    """OME-NGFF 0.4 ``multiscales`` of one level at ``voxel_size`` angstrom, as copick writes them (axes ``z, y,
    x`` in angstrom, a scale transform; a leading ``c`` axis of scale 1 for ``channels``)."""
    axes: list[dict[str, str]] = [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"]
    scale = [voxel_size] * 3
    if channels:
        axes = [{"name": "c", "type": "channel"}, *axes]
        scale = [1.0, *scale]
    return [{
        "axes": axes,
        "datasets": [{"coordinateTransformations": [{"scale": scale, "type": "scale"}], "path": "0"}],
        "metadata": {},
        "name": "/",
        "version": "0.4",
    }]


def _create_level0(path: Path, shape: Sequence[int], chunks: Sequence[int], dtype: Any) -> tuple[zarr.Group, Any]:
    """A zarr v2 group at ``path`` with an empty array ``0`` (``/`` chunk keys, copick's compressor)."""
    import numcodecs

    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    array = group.create_array(
        "0", shape=tuple(shape), chunks=tuple(chunks), dtype=dtype, fill_value=0,
        compressors=numcodecs.get_codec(dict(_COMPRESSOR)), chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    return group, array


def write_segmentation(
    store: ExplainStore, lut: np.ndarray, path: Path, voxel_size: float, provenance: dict[str, Any]
) -> Path:
    """The store's label image (level 0) mapped through ``lut`` (``lut[store label]`` = copick label, `(k + 1,)`)
    as a multilabel segmentation group at ``path``, one ``CHUNK``^3 block at a time."""
    source = store.labels(0)  # (z, y, x), 0 none, i + 1 class i
    dtype = np.uint8 if int(lut.max()) <= np.iinfo(np.uint8).max else np.uint16
    lut = lut.astype(dtype)
    group, array = _create_level0(path, source.shape, (CHUNK,) * 3, dtype)
    for sl in blocks(source.shape, (CHUNK,) * 3):
        array[sl] = lut[np.asarray(source[sl])]
    group.attrs.update({"multiscales": ome_multiscales(voxel_size, channels=False), "tomocam": provenance})
    return path


def write_features(
    store: ExplainStore, method: str, classes: Sequence[str], path: Path, voxel_size: float, *, float16: bool,
    provenance: dict[str, Any],
) -> Path:
    """The ``method`` heatmaps of ``classes`` on the tomogram's grid as a ``(c, z, y, x)`` feature map group at
    ``path``: each ``(1, CHUNK, CHUNK, CHUNK)`` chunk is stitched from the per-tile maps and written on its own
    (memory: a few chunks per Dask worker thread, whatever the tomogram's size)."""
    import dask.array as da

    index = [store.classes.index(c) for c in classes]
    chunks = (1, CHUNK, CHUNK, CHUNK)
    # One dask block per zarr chunk, so that no two threads ever write parts of the same chunk (a store without
    # per-tile maps is read from level 0, in the store's own chunks).
    full = store.full_grid(method, chunk=CHUNK)[index].rechunk(chunks)  # (c, z, y, x) lazy
    dtype = np.float16 if float16 else np.float32
    group, array = _create_level0(path, full.shape, chunks, dtype)
    da.store(full.astype(dtype), array, lock=False)
    group.attrs.update({"multiscales": ome_multiscales(voxel_size, channels=True),
                        "tomocam": {**provenance, "channels": list(classes)}})
    return path
