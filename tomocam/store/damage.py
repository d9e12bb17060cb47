"""Chunks a failed write left behind: found by decoding them, and removed so that they read as absent.

zarrs writes a chunk in place (truncate, then write), so a full disk, a quota, an I/O error or a kill in the middle
of a write leaves the chunk empty, cut short, or holding bytes its codec cannot decode; zarr-python's writes (the
metadata, ``tiles/done``) go through a temporary file and are whole or absent. A resumed run must neither trust such
a chunk nor stop on it: :func:`damaged_chunks` decodes every stored chunk of an array one by one and names those
that fail, and :func:`remove_chunks` deletes them, after which they read as the fill value, as chunks never written
do. Which blocks or boxes must then be recomputed is the writer's business (:mod:`tomocam.store.writer`).

An OS error while reading (an I/O error of the disk itself) is not a damaged chunk: it is raised, for the run to
stop with it, rather than taken for a chunk to recompute.
"""

from __future__ import annotations

import errno
import itertools
import os
from pathlib import Path

import zarr

from tomocam.errors import os_fault

#: A chunk index: one integer per axis of the array's chunk grid.
ChunkIndex = tuple[int, ...]


def chunk_path(array: zarr.Array, index: ChunkIndex) -> Path:
    """The file of chunk ``index`` of ``array`` (an array of a local store)."""
    key = array.metadata.encode_chunk_key(index)
    return Path(str(array.store_path.store.root)) / array.path / key


def damaged_chunks(array: zarr.Array) -> list[ChunkIndex]:
    """The indices of ``array``'s stored chunks that do not decode (empty, short, corrupt), in C order.

    Chunks that are not stored are not damaged: they read as the fill value. Each chunk is read on its own, so
    the memory used is one chunk's.
    """
    damaged = []
    for index in itertools.product(*(range(n) for n in array.cdata_shape)):
        path = chunk_path(array, index)
        if not path.is_file():
            continue
        try:
            array.get_block_selection(index)
        except Exception as err:
            fault = os_fault(err)
            if fault is not None and fault.errno not in (None, errno.ENOENT):
                raise fault from err  # the disk failed this read; the chunk itself may be fine
            damaged.append(index)
    return damaged


def remove_chunks(array: zarr.Array, indices: list[ChunkIndex]) -> None:
    """Delete the chunks ``indices`` of ``array``: they read as the fill value from now on."""
    for index in indices:
        try:
            os.unlink(chunk_path(array, index))
        except FileNotFoundError:
            pass
