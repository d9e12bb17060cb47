"""How well a tomogram's heatmaps find its particles, measured against a known particle table.

The measures per CAM method, each beside chance and (pointing) beside a baseline that uses no model:

- **Pointing game**: in a cube of ``cube`` voxels per edge centred on a particle (clipped at the tomogram's faces),
  the voxel where the heatmap of the particle's true class is largest; a hit when it lies within ``radius`` voxels
  of the particle's centre. Chance: the fraction of the cube's voxels within ``radius`` of the centre (a uniformly
  random voxel), averaged over the particles: ``~ 4/3 pi 6^3 / 41^3 = 0.013`` for the defaults.
- **Pointing at any instance** (the pointing game as Zhang et al. 2016 define it for images with several objects
  of a class): the same maximum is a hit when it lies within ``radius`` voxels of *any* particle of the true
  class. In a crowded tomogram a cube holds neighbours; a map that peaks on a brighter neighbour of the same class
  has found a particle of that class, not missed one. Each maximum is also sorted by where it lies (``peaks``): on
  the particle, on another particle of its class, on a particle of another class, on none. Chance: the share of
  the cube within ``radius`` of a particle of the class.
- **Class at the centre**: the class whose heatmap is largest at the particle's centre voxel, the background
  class left out of the competition. Chance: one over the number of competing classes.
- **Picks**: :func:`tomocam.picking.pick_store` (local maxima of each class heatmap above its threshold, by default
  chosen per class from the data; one class per site) scored by
  :func:`tomocam.picking.evaluate_picks` (a pick matches a particle of its class within ``radius`` voxels).
  Chance: as many picks as particles at uniformly random positions and classes, F1 averaged over draws. Also
  given: the threshold with the best F1 (tuned on the truth, so an upper bound for any threshold chosen without it).
- **No-model baseline** (both pointing games; without a model there are no classes): the same cube of the
  tomogram smoothed by a Gaussian of ``sigma`` voxels, its largest voxel for bright particles (smallest for dark).
  The cube is read with a halo of 4 sigma, so the smoothing equals smoothing the whole tomogram.

Memory: only the cubes around particles and the values at their centres are read, never a whole heatmap: the
heatmaps on the tomogram's grid come from :meth:`tomocam.store.ExplainStore.full_grid`, which stitches only the
blocks asked for; the picks walk the stored level 0 block by block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from tomocam.classes import is_background
from tomocam.errors import ClassError, InputError
from tomocam.particles import particle_table, to_voxels
from tomocam.store import ExplainStore

#: A voxel size ``(z, y, x)`` in angstrom.
VoxelSize = tuple[float, float, float]


@dataclass(frozen=True)
class Cube:
    """A cube around a particle, clipped to a volume: ``slices`` into the volume ``(z, y, x)`` and the particle's
    ``centre`` ``(3,)`` in the cube's own voxel coordinates (fractional)."""

    slices: tuple[slice, ...]
    centre: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        """The cube's size ``(z, y, x)`` in voxels (smaller than asked at the volume's edge)."""
        return tuple(s.stop - s.start for s in self.slices)


def cube_around(centre_zyx: np.ndarray, size: int, shape: Sequence[int], halo: int = 0) -> Cube:
    """The cube of ``size`` voxels per edge (odd sizes are symmetric) centred on the voxel nearest
    ``centre_zyx`` ``(3,)``, grown by ``halo`` voxels on every side, clipped to a volume of ``shape``."""
    nearest = np.rint(np.asarray(centre_zyx, dtype=np.float64)).astype(int)
    lo = np.maximum(nearest - size // 2 - halo, 0)
    hi = np.minimum(nearest - size // 2 + size + halo, np.asarray(shape))
    if np.any(hi <= lo):
        raise InputError(f"particle at (z, y, x) {tuple(np.round(centre_zyx, 1))} lies outside the volume "
                         f"{tuple(shape)}")
    return Cube(tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)), np.asarray(centre_zyx, float) - lo)


#: Where a pointing maximum lies (:func:`peak_kinds`): on its particle, on another particle of the same class, on a
#: particle of another class, on none (all within the radius; the first that applies).
PEAK_KINDS = ("own", "same_class", "other_class", "none")


def extreme_voxel(values: np.ndarray, *, largest: bool = True) -> np.ndarray:
    """The voxel ``(3,)`` float of the largest (or smallest) value of ``values`` `(d, h, w)` (the first in C order
    when several are equal)."""
    flat = np.argmax(values) if largest else np.argmin(values)
    return np.array(np.unravel_index(flat, values.shape), dtype=np.float64)


def ball_fraction(shape: Sequence[int], centres: np.ndarray, radius: float) -> float:
    """Fraction of the voxels of a `shape` cube within ``radius`` of any of ``centres`` `(3,)` or `(m, 3)` (cube
    coordinates): the chance that a uniformly random voxel of the cube is a pointing hit."""
    grid = np.indices(tuple(shape), dtype=np.float64)
    near = np.zeros(tuple(shape), dtype=bool)
    for centre in np.atleast_2d(centres):
        near |= sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2
    return float(near.mean())


def smoothed_cube(volume, cube: Cube, sigma: float) -> np.ndarray:
    """The voxels of ``cube`` of ``volume`` `(z, y, x)` after Gaussian smoothing with ``sigma`` voxels: read with a
    halo of ``ceil(4 sigma)`` (where the volume has it), smoothed, cropped back to the cube `cube.shape`."""
    halo = int(math.ceil(4 * sigma))
    lo = [max(s.start - halo, 0) for s in cube.slices]
    hi = [min(s.stop + halo, n) for s, n in zip(cube.slices, volume.shape)]
    block = np.asarray(volume[tuple(slice(a, b) for a, b in zip(lo, hi))], dtype=np.float32)
    smooth = ndimage.gaussian_filter(block, sigma, mode="nearest")
    inner = tuple(slice(s.start - a, s.stop - a) for s, a in zip(cube.slices, lo))
    return smooth[inner]


def particle_centres(particles: pd.DataFrame, voxel_size: VoxelSize) -> np.ndarray:
    """Centres ``(n, 3)`` in ``(z, y, x)`` voxels of size ``voxel_size`` of a particle table (angstrom)."""
    return to_voxels(particles, voxel_size)


def competing_classes(classes: Sequence[str]) -> list[str]:
    """The classes that compete for a particle: all but the background class (:func:`tomocam.classes.is_background`)."""
    return [c for c in classes if not is_background(c)]


def check_particles(particles: pd.DataFrame, classes: Sequence[str], shape: Sequence[int], voxel_size: VoxelSize,
                    source: str) -> None:
    """:class:`ClassError` for a particle class the store lacks, :class:`InputError` for a particle outside the
    volume or a table without particles."""
    if len(particles) == 0:
        raise InputError(f"particle table '{source}' holds no particles")
    unknown = sorted(set(particles["class"]) - set(competing_classes(classes)))
    if unknown:
        raise ClassError(f"particle class {unknown[0]!r} of '{source}' is not among the store's particle classes "
                         f"({', '.join(competing_classes(classes))})")
    centres = particle_centres(particles, voxel_size)
    outside = ~np.all((centres > -0.5) & (centres < np.asarray(shape) - 0.5), axis=1)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise InputError(f"particle {i} of '{source}' at (x, y, z) {tuple(centres[i][::-1])} voxels lies outside the "
                         f"tomogram ({tuple(shape)[::-1]} voxels x, y, z)")


def pointing_peaks(heatmap, particles: pd.DataFrame, voxel_size: VoxelSize, classes: Sequence[str],
                   size: int) -> np.ndarray:
    """Per particle, the voxel ``(n, 3)`` `(z, y, x)` of the tomogram where its true class's channel of ``heatmap``
    `(c, z, y, x)` (voxels of ``voxel_size``) is largest in the cube of ``size`` around it."""
    out = np.zeros((len(particles), 3))
    for i, (centre, name) in enumerate(zip(particle_centres(particles, voxel_size), particles["class"])):
        cube = cube_around(centre, size, heatmap.shape[1:])
        key = (classes.index(name), *cube.slices)
        values = np.asarray(heatmap[key])
        out[i] = extreme_voxel(values) + [s.start for s in cube.slices]
    return out


def peak_kinds(peaks: np.ndarray, particles: pd.DataFrame, voxel_size: VoxelSize, radius: float) -> np.ndarray:
    """Where each particle's maximum ``peaks`` `(n, 3)` `(z, y, x)` lies: per particle one of :data:`PEAK_KINDS`
    ``(n,)``, the first that applies: within ``radius`` voxels of the particle itself (``own``), of another particle
    of its class (``same_class``), of a particle of another class (``other_class``), of none (``none``). A hit of
    the pointing game at any instance is ``own`` or ``same_class``."""
    names = particles["class"].to_numpy(dtype=object)
    # per peak, the particles near it
    near = cKDTree(particle_centres(particles, voxel_size)).query_ball_point(peaks, radius)
    kinds = np.full(len(particles), "none", dtype=object)
    for i, js in enumerate(near):
        if i in js:
            kinds[i] = "own"
        elif any(names[j] == names[i] for j in js):
            kinds[i] = "same_class"
        elif js:
            kinds[i] = "other_class"
    return kinds


def class_at_centres(heatmap, particles: pd.DataFrame, voxel_size: VoxelSize, classes: Sequence[str]) -> np.ndarray:
    """Per particle, the name ``(n,)`` of the competing class with the largest ``heatmap`` `(c, z, y, x)` value at
    the voxel nearest its centre."""
    compete = competing_classes(classes)
    channels = [classes.index(c) for c in compete]
    names = []
    for centre in particle_centres(particles, voxel_size):
        z, y, x = np.rint(centre).astype(int)
        values = np.asarray(heatmap[:, z, y, x])[channels]
        names.append(compete[int(np.argmax(values))])
    return np.array(names, dtype=object)


def baseline_peaks(volume, particles: pd.DataFrame, voxel_size: VoxelSize, size: int, sigma: float,
                   bright: bool) -> np.ndarray:
    """No-model maxima ``(n, 3)`` `(z, y, x)`: per particle, the extreme (max for ``bright`` particles, else min) of
    the tomogram ``volume`` `(z, y, x)` smoothed with ``sigma`` voxels, in the cube around it."""
    out = np.zeros((len(particles), 3))
    for i, centre in enumerate(particle_centres(particles, voxel_size)):
        cube = cube_around(centre, size, volume.shape)
        out[i] = extreme_voxel(smoothed_cube(volume, cube, sigma), largest=bright) + [s.start for s in cube.slices]
    return out


def pointing_chance(particles: pd.DataFrame, shape: Sequence[int], voxel_size: VoxelSize, size: int, radius: float,
                    *, any_instance: bool = False) -> float:
    """Mean over particles of :func:`ball_fraction` of each particle's (clipped) cube: around the particle, or
    (``any_instance``) around every particle of its class whose ball can reach the cube."""
    centres = particle_centres(particles, voxel_size)
    names = particles["class"].to_numpy(dtype=object)
    fractions = []
    for centre, name in zip(centres, names):
        cube = cube_around(centre, size, shape)
        balls = cube.centre
        if any_instance:
            mine = centres[names == name]
            reach = np.all(np.abs(mine - centre) <= size / 2 + radius + 1, axis=1)
            balls = mine[reach] - [s.start for s in cube.slices]
        fractions.append(ball_fraction(cube.shape, balls, radius))
    return float(np.mean(fractions))


def random_picks_f1(particles: pd.DataFrame, shape: Sequence[int], classes: Sequence[str], tolerance: float,
                    voxel_size: VoxelSize, draws: int = 20, seed: int = 0) -> float:
    """Mean F1 of ``draws`` sets of random picks (as many as particles, uniform positions in a volume of
    ``shape`` `(z, y, x)`, uniform competing classes) against ``particles``; ``tolerance`` in angstrom."""
    from tomocam.picking import evaluate_picks

    rng = np.random.default_rng(seed)
    compete = competing_classes(classes)
    n = len(particles)
    f1 = []
    for _ in range(draws):
        zyx = rng.uniform(-0.5, np.asarray(shape) - 0.5, size=(n, 3))
        picks = particle_table("random", rng.choice(compete, size=n).tolist(), zyx[:, ::-1] * voxel_size[::-1])
        f1.append(evaluate_picks(picks, particles, tolerance, classes=compete)[1].f1)
    return float(np.mean(f1))


def best_threshold(picks: pd.DataFrame, particles: pd.DataFrame, tolerance: float, classes: Sequence[str],
                   steps: int = 50) -> tuple[float, Any]:
    """The pick-score threshold with the best F1 against ``particles`` (tuned on the truth: an upper bound of what
    a threshold chosen without it can reach), and its :class:`tomocam.picks.PickScore`. Candidates: ``steps``
    quantiles of the pick scores (every score when fewer)."""
    from tomocam.picking import evaluate_picks

    scores = picks["score"].to_numpy()
    if len(scores) == 0:
        return math.inf, evaluate_picks(picks, particles, tolerance, classes=classes)[1]
    candidates = np.unique(scores) if len(scores) <= steps else np.unique(np.quantile(scores, np.linspace(0, 1, steps)))
    best: tuple[float, Any] | None = None
    for t in candidates:
        score = evaluate_picks(picks[picks["score"] >= t], particles, tolerance, classes=classes)[1]
        if best is None or score.f1 > best[1].f1:
            best = (float(t), score)
    assert best is not None  # candidates is not empty
    return best


def evaluate_localisation(
    store: ExplainStore,
    particles: pd.DataFrame,
    tomogram,
    *,
    bright: bool,
    methods: Sequence[str] | None = None,
    cube: int = 41,
    radius: float = 6.0,
    sigma: float = 2.0,
    pick_radius: float = 10.0,
    pick_threshold: float | None = None,
    source: str = "particles",
) -> dict[str, Any]:
    """Localisation figures of ``store``'s heatmaps for the particles of ``particles`` (a particle table of
    :mod:`tomocam.particles`, angstrom, all of this tomogram) in ``tomogram`` `(z, y, x)` (array-like, read by
    cubes): a JSON-friendly dict.

    ``cube``, ``radius``, ``sigma`` and ``pick_radius`` (non-maximum suppression) are in voxels; picks match
    particles within ``radius`` voxels; ``pick_threshold`` in score units, ``None`` for the picks' own default (one per
    class from the data: :func:`tomocam.picking.pick_store`). ``bright``: particles are brighter
    than the background in ``tomogram`` (the no-model baseline takes the maximum, else the minimum).

    Keys: the settings, ``n`` (particles), ``methods`` -> per method ``pointing``, ``pointing_any_instance``,
    ``peaks`` (how many maxima lie where, :data:`PEAK_KINDS`), ``class_accuracy``, ``per_class`` (the three rates
    per class) and ``picks`` (``n_picks``, ``thresholds`` per class, ``precision``, ``recall``, ``f1``,
    ``best_threshold``, ``best_f1``); ``baseline`` -> ``pointing``, ``pointing_any_instance``, ``peaks`` and
    ``per_class``; ``chance`` -> ``pointing``, ``pointing_any_instance``, ``class_accuracy``, ``picks_f1``.
    """
    from tomocam.picking import evaluate_picks, pick_store
    from tomocam.store.select import select_methods

    if cube < 1 or radius < 0 or sigma <= 0 or pick_radius <= 0:
        raise InputError(f"cube must be >= 1, radius >= 0, sigma and pick radius > 0 voxels; found {cube}, "
                         f"{radius}, {sigma}, {pick_radius}")
    methods = select_methods(store, methods)
    classes = store.classes
    shape = tuple(int(n) for n in tomogram.shape)
    if store.shape != shape:
        raise InputError(f"store '{store.path}' explains a tomogram of {store.shape} voxels but this one is {shape}: "
                         "they do not belong together")
    vs = store.voxel_size
    check_particles(particles, classes, shape, vs, source)
    particles = particles.reset_index(drop=True)
    compete = competing_classes(classes)
    truth = particles["class"].to_numpy(dtype=object)
    tolerance = radius * min(vs)

    def rates(hits: dict[str, np.ndarray]) -> dict[str, Any]:
        """Each measure's rate (``hits``: measure -> ``(n,)`` bool), and per class (the classes with particles)."""
        overall: dict[str, Any] = {m: float(h.mean()) for m, h in hits.items()}
        overall["per_class"] = {c: {m: float(h[truth == c].mean()) for m, h in hits.items()}
                                for c in compete if (truth == c).any()}
        return overall

    def pointing_hits(peaks: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """The two pointing games' hits ``(n,)`` of maxima ``peaks`` `(n, 3)`, and how many maxima lie where."""
        kinds = peak_kinds(peaks, particles, vs, radius)
        hits = {"pointing": kinds == "own", "pointing_any_instance": np.isin(kinds, ["own", "same_class"])}
        return hits, {k: int((kinds == k).sum()) for k in PEAK_KINDS}

    out: dict[str, Any] = {"n": len(particles), "classes": compete, "cube": cube, "radius": radius, "sigma": sigma,
                           "pick_radius": pick_radius, "pick_threshold": pick_threshold,
                           "polarity": "bright" if bright else "dark", "methods": {}}
    for method in methods:
        # the heatmaps on the tomogram's grid, stitched lazily: blocks about a cube's size for the cubes, small
        # blocks for the single voxels at the centres (a block is computed whole when any voxel of it is read)
        hits, peaks = pointing_hits(pointing_peaks(store.full_grid(method, chunk=32), particles, vs, classes, cube))
        right = class_at_centres(store.full_grid(method, chunk=8), particles, vs, classes) == truth
        picks = pick_store(store, method=method, classes=compete, threshold=pick_threshold,
                           radius=pick_radius * min(vs))
        score = evaluate_picks(picks, particles, tolerance, classes=compete)[1]
        every_peak = pick_store(store, method=method, classes=compete, threshold=-math.inf,
                                radius=pick_radius * min(vs))
        tuned, tuned_score = best_threshold(every_peak, particles, tolerance, compete)
        out["methods"][method] = {
            **rates({**hits, "class_accuracy": right}), "peaks": peaks,
            "picks": {"n_picks": len(picks), "thresholds": picks.attrs["thresholds"], "precision": score.precision,
                      "recall": score.recall, "f1": score.f1, "best_threshold": tuned, "best_f1": tuned_score.f1},
        }
    hits, peaks = pointing_hits(baseline_peaks(tomogram, particles, vs, cube, sigma, bright))
    out["baseline"] = {**rates(hits), "peaks": peaks}
    out["chance"] = {
        "pointing": pointing_chance(particles, shape, vs, cube, radius),
        "pointing_any_instance": pointing_chance(particles, shape, vs, cube, radius, any_instance=True),
        "class_accuracy": 1.0 / len(compete),
        "picks_f1": random_picks_f1(particles, shape, classes, tolerance, vs),
    }
    return out
