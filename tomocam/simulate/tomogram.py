"""Whole synthetic tomograms with ground truth: particles of several classes at random non-overlapping positions
and orientations, imaged with the same acquisition model as the subtomograms.

Ground truth: a particle table (one row per particle) and a label volume (uint8, 0 = background, i + 1 = class i)
where the placed density exceeds the structure's contour level. SNR is ``var(signal) / var(noise)`` over the
whole volume, so a sparse tomogram at the same SNR is noisier per particle than a box with one centred particle.

Orientation convention: a particle is the template rotated by ``R`` about its centre (a template offset ``p``
lands at ``R p``; ``x, y, z`` order). The table gives ``R`` row-major (``r11 .. r33``) and the intrinsic ZYZ Euler
angles of ``R`` in degrees (``scipy`` ``Rotation.from_euler("ZYZ", [rot, tilt, psi], degrees=True)`` gives it back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tomocam.errors import InputError, OutputError
from tomocam.simulate.acquisition import Acquisition, acquire, place, random_rotation
from tomocam.simulate.structures import Structure

TABLE_COLUMNS = [
    "class_name", "class_index", "x", "y", "z", "x_angstrom", "y_angstrom", "z_angstrom",
    "rot", "tilt", "psi", "r11", "r12", "r13", "r21", "r22", "r23", "r31", "r32", "r33",
]


@dataclass
class SimulatedTomogram:
    """``volume`` ``(d, h, w)`` float32, ``table`` (see :data:`TABLE_COLUMNS`), ``mask`` ``(d, h, w)`` uint8,
    ``classes`` the class names (index ``i`` is label ``i + 1`` in the mask), ``voxel_size`` angstrom."""

    volume: np.ndarray
    table: pd.DataFrame
    mask: np.ndarray
    classes: list[str]
    voxel_size: float


def _positions(
    rng: np.random.Generator, shape_zyx: tuple[int, ...], radii: np.ndarray, gap: float, max_tries: int = 200
) -> np.ndarray:
    """Random (x, y, z) centres inside the volume, each at least its radius from the faces, none overlapping."""
    size_xyz = np.asarray(shape_zyx[::-1], dtype=float)
    centres = np.empty((len(radii), 3))
    for i, r in enumerate(radii):
        lo, hi = np.full(3, r), size_xyz - 1 - r
        if np.any(hi < lo):
            raise InputError(f"volume {tuple(shape_zyx)} (z, y, x) is too small for a particle of radius "
                             f"{r:.1f} voxels")
        for _ in range(max_tries):
            c = rng.uniform(lo, hi)
            if i == 0 or np.all(np.linalg.norm(centres[:i] - c, axis=1) >= radii[:i] + r + gap):
                centres[i] = c
                break
        else:
            raise InputError(
                f"could place only {i} of {len(radii)} particles without overlap in a {tuple(shape_zyx)} volume: "
                "ask for fewer particles or a larger volume"
            )
    return centres


def simulate_tomogram(
    shape_zyx: tuple[int, int, int],
    structures: Sequence[Structure],
    n_particles: int,
    *,
    acquisition: Acquisition = Acquisition(snr=1.0),
    seed: int = 0,
    gap: float = 1.0,
) -> SimulatedTomogram:
    """Simulate a tomogram of ``shape_zyx`` voxels with ``n_particles`` particles drawn evenly from ``structures``.

    Classes cycle in order (particle ``j`` is of class ``j % len(structures)``) so every class is present; positions
    and orientations are random and seeded; particles keep ``gap`` voxels between their bounding spheres. The
    voxel size is the structures'. Returns volume, particle table and label mask.
    """
    if not structures:
        raise InputError("no structures to put in the tomogram")
    if n_particles < 0:
        raise InputError(f"number of particles must be >= 0, found {n_particles}")
    if len(shape_zyx) != 3 or min(shape_zyx) < 1:
        raise InputError(f"tomogram shape must be three positive sizes (z, y, x), found {tuple(shape_zyx)}")
    if len(structures) > 255:
        raise InputError(f"at most 255 classes fit a uint8 mask, found {len(structures)}")
    voxel_size = structures[0].voxel_size
    rng = np.random.default_rng(seed)
    kinds = np.arange(n_particles) % len(structures)
    radii = np.array([structures[int(k)].radius for k in kinds])
    order = np.argsort(-radii, kind="stable")  # place large particles first: fewer rejections
    centres = np.empty((n_particles, 3))
    centres[order] = _positions(rng, tuple(shape_zyx), radii[order], gap)
    rotations = [random_rotation(rng) for _ in range(n_particles)]
    density = np.zeros(tuple(shape_zyx), dtype=np.float32)
    mask = np.zeros(tuple(shape_zyx), dtype=np.uint8)
    for k, c, rot in zip(kinds, centres, rotations):
        s = structures[int(k)]
        _add_particle(density, mask, s, c, rot, k + 1)
    volume, _ = acquire(density, voxel_size, acquisition, rng)
    rows = []
    for k, c, rot in zip(kinds, centres, rotations):
        euler = rot.as_euler("ZYZ", degrees=True)
        rows.append([structures[int(k)].name, int(k), *c, *(c * voxel_size), *euler, *rot.as_matrix().ravel()])
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return SimulatedTomogram(volume, table, mask, [s.name for s in structures], voxel_size)


def _add_particle(
    density: np.ndarray, mask: np.ndarray, s: Structure, centre_xyz: np.ndarray, rot, label: int
) -> None:
    """Add the rotated template at ``centre_xyz`` (sub-voxel exact) into ``density`` and its contour into ``mask``."""
    m = s.density.shape[0]
    centre_zyx = centre_xyz[::-1]
    corner = np.floor(centre_zyx).astype(int) - (m - 1) // 2  # patch origin in the volume
    frac_shift = centre_zyx - (corner + (m - 1) / 2)  # centre offset inside the patch, zyx
    patch = place(s.density, rot, frac_shift[::-1], (m, m, m))
    lo = np.maximum(corner, 0)
    hi = np.minimum(corner + m, density.shape)
    if np.any(hi <= lo):
        return
    src = tuple(slice(a - c, b - c) for a, b, c in zip(lo, hi, corner))
    dst = tuple(slice(a, b) for a, b in zip(lo, hi))
    density[dst] += patch[src]
    mask[dst][patch[src] > s.contour] = label


def write_tomogram(sim: SimulatedTomogram, out: Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Write ``out`` (MRC, voxel size in the header), ``<stem>_particles.csv`` and ``<stem>_mask.mrc`` (MRC mode 6,
    uint16 labels) beside it.

    The table is written last, so a complete table means complete outputs. Returns the paths written.
    """
    import mrcfile

    out = Path(out)
    paths = {
        "tomogram": out,
        "mask": out.with_name(out.stem + "_mask.mrc"),
        "particles": out.with_name(out.stem + "_particles.csv"),
    }
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"output exists already: {', '.join(existing)} (pass --overwrite to replace)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for key, data in (("tomogram", sim.volume.astype(np.float32)), ("mask", sim.mask.astype(np.uint16))):
            with mrcfile.new(paths[key], overwrite=True) as mrc:
                mrc.set_data(data)
                mrc.voxel_size = sim.voxel_size
        sim.table.to_csv(paths["particles"], index=False, float_format="%.4f")
    except OSError as err:
        raise OutputError(f"cannot write tomogram outputs at '{out}': {err}") from err
    return paths
