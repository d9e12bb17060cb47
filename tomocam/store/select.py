"""Choosing what of a store a reader uses: classes by name and CAM methods, checked against the store."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomocam.classes import class_indices
from tomocam.errors import InputError
from tomocam.store import ExplainStore


def select_classes(store: ExplainStore, names: Sequence[str] | None) -> list[str]:
    """Class names of ``store`` for ``names`` (names or indices; all of them when empty or None).

    Raises :class:`ClassError` naming the unknown class and listing the known ones.
    """
    known = list(store.classes)
    return [known[i] for i in class_indices(names, known, owner=f"store '{store.path}'")]


def select_methods(store: ExplainStore, methods: Sequence[str] | None) -> list[str]:
    """``methods`` checked against the store's (all of them when empty or None); :class:`InputError` if absent."""
    have = store.methods
    if not methods:
        return list(have)
    missing = [m for m in methods if m not in have]
    if missing:
        raise InputError(f"store '{store.path}' has no {missing[0]!r} heatmaps; it has {', '.join(have)}")
    return list(dict.fromkeys(methods))


class ChannelView:
    """One channel of a `(c, z, y, x)` zarr or dask array as a lazily sliced `(z, y, x)` volume (reads, or
    computes, only what is sliced)."""

    def __init__(self, array, channel: int) -> None:
        self.array, self.channel = array, channel
        self.shape = tuple(array.shape[1:])
        self.dtype = array.dtype
        # zarr gives one chunk edge per axis, dask the tuple of chunk sizes: its first is the regular edge
        self.chunks = tuple(c[0] if isinstance(c, tuple) else c for c in array.chunks[1:])

    def __getitem__(self, key: tuple[slice, ...]):
        index = (self.channel, *key)
        return np.asarray(self.array[index])
