"""Where boxes are cut: pure functions on voxel coordinates (no I/O).

A box is the tile explain would cut around a centre, so that training sees the pixels explaining sees: ``tile``
tomogram voxels per axis (the model's input edge at the dataset's voxel size, rounded as explain rounds it), its
start the centre minus ``(tile - 1) / 2`` rounded half up. A tile starting at ``s`` has its centre at
``s + (tile - 1) / 2``; that centre gives back ``s``.

Boxes that would cross a face of the tomogram are skipped, not padded: explain never pads (its last tile on each
axis is moved inside the volume), so a padded box would show the model an edge it never meets when explaining.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

from tomocam.errors import InputError
from tomocam.models.inputs import InputSpec, model_input_for, tile_for_model


def box_spec(input_size: int, model_voxel: float, tomogram_voxel: Sequence[float], *, invert: bool) -> InputSpec:
    """The input preparation of boxes of ``input_size`` voxels at ``model_voxel`` angstrom from a tomogram of
    ``tomogram_voxel`` (z, y, x) angstrom: tiles of ``round(input_size * model_voxel / voxel)`` tomogram voxels
    resampled to ``input_size`` per axis, as explain sizes them. Normalisation is left to training (``"raw"``).

    Raises :class:`InputError` where explain would resample such a tile to another size than ``input_size``
    (a model voxel much finer than the tomogram's), since the boxes would then differ from explain's tiles.
    """
    tile = tile_for_model(input_size, model_voxel, tomogram_voxel)
    size = model_input_for(tile, model_voxel, tomogram_voxel)
    if size != (input_size,) * len(tile):
        raise InputError(
            f"boxes of {input_size} voxels at {model_voxel:g} A are {tile} voxels of a tomogram at "
            f"{'x'.join(f'{v:g}' for v in tomogram_voxel)} A, which explain would resample to {size}, not "
            f"{input_size}: choose a --voxel-size at most about twice the tomogram's or a larger --box"
        )
    return InputSpec(tile=tile, size=size, normalisation="raw", invert=invert)


def box_starts(centres_zyx: np.ndarray, tile: Sequence[int]) -> np.ndarray:
    """Start voxels ``(n, 3)`` int64 of the tiles centred at ``centres_zyx`` ``(n, 3)`` (voxel coordinates)."""
    half = (np.asarray(tile, dtype=float) - 1) / 2
    return np.floor(np.asarray(centres_zyx, dtype=float) - half + 0.5).astype(np.int64).reshape(-1, len(tile))


def box_centres(starts: np.ndarray, tile: Sequence[int]) -> np.ndarray:
    """Centres ``(n, 3)`` float64 (voxel coordinates) of the tiles starting at ``starts`` ``(n, 3)``."""
    return np.asarray(starts, dtype=float) + (np.asarray(tile, dtype=float) - 1) / 2


def inside(starts: np.ndarray, tile: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """``(n,)`` bool: which tiles starting at ``starts`` ``(n, 3)`` lie wholly inside a volume of ``shape``."""
    starts = np.asarray(starts).reshape(-1, len(tile))
    return np.all((starts >= 0) & (starts + np.asarray(tile) <= np.asarray(shape)), axis=1)


def shifted(centres_zyx: np.ndarray, per_particle: int, max_shift: Sequence[int],
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``per_particle`` centres per particle, each moved by whole voxels drawn uniformly from
    ``[-max_shift, max_shift]`` per axis (``(3,)``, tomogram voxels): ``(n * per_particle, 3)`` centres and the
    particle index ``(n * per_particle,)`` of each, particle by particle."""
    centres = np.asarray(centres_zyx, dtype=float).reshape(-1, 3)
    which = np.repeat(np.arange(len(centres)), per_particle)
    bound = np.asarray(max_shift, dtype=np.int64)
    offsets = rng.integers(-bound, bound + 1, size=(len(which), 3))
    return centres[which] + offsets, which


def background_centres(shape: Sequence[int], tile: Sequence[int], particles_zyx: np.ndarray,
                       radius: Sequence[float] | np.ndarray, n: int, rng: np.random.Generator, *,
                       tries: int = 50) -> np.ndarray:
    """``(n, 3)`` centres of whole tiles inside ``shape`` farther than ``radius`` (``(3,)``, voxels per axis, an
    ellipsoid for anisotropic voxels) from every particle centre ``particles_zyx`` ``(m, 3)``, drawn uniformly.

    Raises :class:`InputError` when ``tries * n`` draws do not find ``n`` such places (a crowded tomogram).
    """
    lo, hi = np.zeros(3), np.asarray(shape, dtype=float) - np.asarray(tile, dtype=float)  # start range
    scale = 1 / np.asarray(radius, dtype=float)
    tree = cKDTree(np.asarray(particles_zyx, dtype=float).reshape(-1, 3) * scale) if len(particles_zyx) else None
    found: list[np.ndarray] = []
    for _ in range(tries):
        if sum(len(f) for f in found) >= n:
            break
        starts = np.floor(rng.uniform(lo, hi + 1, size=(n, 3))).astype(np.int64)
        centres = box_centres(starts, tile)
        if tree is not None:
            distance, _ = tree.query(centres * scale)
            centres = centres[distance > 1]
        found.append(centres)
    picked = np.concatenate(found)[:n] if found else np.zeros((0, 3))
    if len(picked) < n:
        raise InputError(f"found only {len(picked)} of {n} background boxes farther than the radius from every "
                         f"particle in a {tuple(shape)} volume: ask for fewer or give a smaller --radius")
    return picked
