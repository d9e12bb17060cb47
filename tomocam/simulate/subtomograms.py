"""Labelled subtomogram datasets: many boxes per class, seeded, in parallel, written to a zarr dataset.

Sample ``i`` is made from its own seed, ``SeedSequence(seed).spawn(n)[i]``, so the data do not depend on how
samples are split among worker processes. Samples are laid out class by class (class ``i // n_per_class``).

Tile semantics (for models used on tomograms at half-tile stride): a box is labelled with the class of the
particle whose centre lies in its central cell, ``|offset| <= max_shift`` voxels on every axis. ``distractors``
adds, on average, that many further particles whose centres lie outside the central cell (partly visible
neighbours, as in a crowded tomogram). The optional "background" class holds boxes with no particle in the
central cell: noise plus off-centre neighbours, with the noise level of the particle boxes. ``min_snr`` draws each
box's SNR log-uniformly between it and the acquisition's SNR (data for tomograms whose SNR is not known in advance).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from tomocam.classes import BACKGROUND
from tomocam.errors import InputError
from tomocam.simulate.acquisition import Acquisition, acquire, place, random_rotation, transfer
from tomocam.simulate.dataset import create_dataset, mark_complete
from tomocam.simulate.structures import Structure


@dataclass(frozen=True)
class Sampling:
    """How particles sit in a box: ``box`` edge (voxels), ``max_shift`` of the centred particle (voxels, per
    axis), mean number of off-centre ``distractors``, whether a ``background`` class is added, and ``min_snr``:
    when set, each box's SNR is drawn log-uniformly from ``[min_snr, acquisition SNR]``."""

    box: int = 40
    max_shift: float = 2.0
    distractors: float = 0.0
    background: bool = False
    min_snr: float | None = None

    def __post_init__(self) -> None:
        if self.box < 8:
            raise InputError(f"box must be at least 8 voxels, found {self.box}")
        if not (0 <= self.max_shift < self.box / 2):
            raise InputError(f"max shift must be in [0, box/2) = [0, {self.box / 2}), found {self.max_shift}")
        if self.distractors < 0:
            raise InputError(f"distractors must be >= 0, found {self.distractors}")
        if self.min_snr is not None and not (0 < self.min_snr < math.inf):
            raise InputError(f"min SNR must be positive and finite, found {self.min_snr}")


def class_names(structures: Sequence[Structure], sampling: Sampling) -> list[str]:
    """Class names of a dataset: the structures' names, then "background" when asked."""
    return [s.name for s in structures] + ([BACKGROUND] if sampling.background else [])


def _distractor_offsets(
    rng: np.random.Generator, radii: list[float], r_main: float | None, sampling: Sampling
) -> list[np.ndarray]:
    """Centres (x, y, z voxels from the box centre) outside the central cell, not overlapping each other."""
    half, cell = sampling.box / 2, sampling.max_shift
    placed: list[tuple[np.ndarray, float]] = [] if r_main is None else [(np.zeros(3), r_main)]
    out = []
    for r in radii:
        for _ in range(50):
            o = rng.uniform(-(half + r / 2), half + r / 2, size=3)
            if np.abs(o).max() <= cell:
                continue
            if all(np.linalg.norm(o - c) >= r + rc for c, rc in placed):
                placed.append((o, r))
                out.append(o)
                break
    return out


def make_box(
    structures: Sequence[Structure],
    label: int,
    rng: np.random.Generator,
    sampling: Sampling,
    acq: Acquisition,
    voxel_size: float,
    *,
    filters: tuple[np.ndarray, np.ndarray] | None = None,
    background_noise_variance: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One box of class ``label`` (index into ``structures``, or ``len(structures)`` for background).

    Returns ``(observed, clean)``, each ``(box, box, box)`` float32.
    """
    if sampling.min_snr is not None:  # drawn first, so the rest of the box does not depend on whether it is asked
        snr = math.exp(rng.uniform(math.log(sampling.min_snr), math.log(acq.snr)))
        background_noise_variance *= acq.snr / snr
        acq = replace(acq, snr=snr)
    shape = (sampling.box,) * 3
    density = np.zeros(shape, dtype=np.float32)
    is_background = label == len(structures)
    r_main = None
    if not is_background:
        s = structures[label]
        shift = rng.uniform(-sampling.max_shift, sampling.max_shift, size=3)
        density += place(s.density, random_rotation(rng), shift, shape)
        r_main = s.radius
    mean_extra = sampling.distractors + (1.0 if is_background else 0.0)  # background boxes: partial neighbours
    n_extra = int(rng.poisson(mean_extra)) if mean_extra > 0 else 0
    kinds = rng.integers(0, len(structures), size=n_extra)
    offsets = _distractor_offsets(rng, [structures[k].radius for k in kinds], r_main, sampling)
    for k, o in zip(kinds, offsets):
        density += place(structures[k].density, random_rotation(rng), o, shape)
    noise_var = background_noise_variance if is_background else None
    if is_background and math.isinf(acq.snr):
        noise_var = None
    return acquire(density, voxel_size, acq, rng, filters=filters, noise_variance=noise_var)


def reference_noise_variance(
    structures: Sequence[Structure], sampling: Sampling, acq: Acquisition, voxel_size: float
) -> float:
    """Noise variance of background boxes: mean over classes of a centred, unrotated particle's filtered-signal
    variance, divided by the SNR (so background boxes are as noisy as particle boxes)."""
    if math.isinf(acq.snr):
        return 0.0
    from scipy.spatial.transform import Rotation

    shape = (sampling.box,) * 3
    filters = transfer(shape, voxel_size, acq)
    variances = []
    for s in structures:
        clean = acquire(place(s.density, Rotation.identity(), np.zeros(3), shape), voxel_size,
                        Acquisition(**{**asdict(acq), "snr": math.inf}), np.random.default_rng(0), filters=filters)[1]
        variances.append(float(clean.var()))
    return float(np.mean(variances)) / acq.snr


# Worker state, set once per process by the pool initializer (templates are not re-sent with every task).
_STATE: dict = {}


def _init_worker(structures, sampling, acq, voxel_size, noise_var) -> None:
    _STATE.update(structures=structures, sampling=sampling, acq=acq, voxel_size=voxel_size, noise_var=noise_var,
                  filters=transfer((sampling.box,) * 3, voxel_size, acq))


def _make_block(task: tuple[list[int], list[np.random.SeedSequence]]) -> tuple[list[int], np.ndarray]:
    labels, seeds = task
    st = _STATE
    out = np.empty((len(labels),) + (st["sampling"].box,) * 3, dtype=np.float32)
    for j, (label, seed) in enumerate(zip(labels, seeds)):
        out[j] = make_box(st["structures"], label, np.random.default_rng(seed), st["sampling"], st["acq"],
                          st["voxel_size"], filters=st["filters"], background_noise_variance=st["noise_var"])[0]
    return labels, out


def simulate_subtomograms(
    structures: Sequence[Structure],
    out: Path,
    *,
    n_per_class: int,
    acquisition: Acquisition = Acquisition(),
    sampling: Sampling = Sampling(),
    seed: int = 0,
    workers: int | None = None,
    command: str = "",
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Simulate ``n_per_class`` boxes of every class and write a dataset at ``out`` (see :mod:`.dataset`).

    ``progress(done, total)`` is called as blocks finish. ``workers`` defaults to the CPU count; results are
    identical for any number of workers.
    """
    if not structures:
        raise InputError("no structures to simulate")
    if n_per_class < 1:
        raise InputError(f"n per class must be >= 1, found {n_per_class}")
    if sampling.min_snr is not None and not (sampling.min_snr <= acquisition.snr < math.inf):
        raise InputError(f"min SNR {sampling.min_snr} needs a finite acquisition SNR at least as large, "
                         f"found {acquisition.snr}")
    voxel_size = structures[0].voxel_size
    if any(abs(s.voxel_size - voxel_size) > 1e-6 for s in structures):
        raise InputError("all structures must share one voxel size")
    from tomocam import __version__

    names = class_names(structures, sampling)
    n = n_per_class * len(names)
    labels = np.repeat(np.arange(len(names)), n_per_class)
    seeds = np.random.SeedSequence(seed).spawn(n)
    attrs = {
        "classes": names, "voxel_size": voxel_size, "box": sampling.box, "n_per_class": n_per_class, "seed": seed,
        "acquisition": acquisition.as_dict(), "sampling": asdict(sampling),
        "sources": {s.name: s.source for s in structures}, "polarity": "bright", "version": __version__,
        "command": command,
    }
    group, volumes, label_array = create_dataset(out, n, sampling.box, attrs, overwrite=overwrite)
    label_array[:] = labels.astype(np.int32)
    noise_var = reference_noise_variance(structures, sampling, acquisition, voxel_size) if sampling.background else 0.0
    block = 16
    tasks = [(labels[i:i + block].tolist(), seeds[i:i + block]) for i in range(0, n, block)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    init = (list(structures), sampling, acquisition, voxel_size, noise_var)
    if workers == 1:
        _init_worker(*init)
        _write(map(_make_block, tasks), tasks, volumes, n, progress)
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=init) as pool:
            _write(pool.map(_make_block, tasks), tasks, volumes, n, progress)
    mark_complete(group)
    return Path(out)


def _write(results, tasks, volumes, n: int, progress) -> None:
    """Write blocks in task order as they arrive (``pool.map`` keeps the order)."""
    start = 0
    for (labels, _), (_, block) in zip(tasks, results):
        volumes[start:start + len(labels)] = block
        start += len(labels)
        if progress is not None:
            progress(start, n)
