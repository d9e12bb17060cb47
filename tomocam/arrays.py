"""What block-by-block readers share: the array-like protocol they read from and the grid of blocks they walk.

A leaf module (numpy only), so that picking, writing and any other room can walk a volume that does not fit in
memory without importing each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

from numpy.typing import NDArray


class ArrayLike(Protocol):
    """An array read by slices: a numpy array, a zarr array or an mrcfile memory map."""

    shape: tuple[int, ...]

    def __getitem__(self, key: tuple[slice, ...]) -> NDArray: ...


def blocks(shape: Sequence[int], block: Sequence[int]) -> list[tuple[slice, ...]]:
    """The slices of a regular grid of blocks covering ``shape`` (the last block of each axis may be smaller)."""
    ranges = [range(0, s, b) for s, b in zip(shape, block)]
    return [
        tuple(slice(o, min(o + b, s)) for o, b, s in zip(origin, block, shape))
        for origin in itertools.product(*ranges)
    ]
