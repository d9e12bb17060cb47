"""Built-in procedural shapes: clearly distinct particle classes made analytically, with no external files.

Each shape is a signed distance function (angstrom) rendered with a soft edge, so the same class looks the same
at any voxel size. Sizes are chosen so every particle fits in a 200 A diameter (20 voxels at 10 A), leaving room
for shifts inside a 40^3 box. The class "background" is not a shape: datasets and tomogram tiles use it for boxes
with no particle centred in them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tomocam.errors import InputError
from tomocam.simulate.structures import Structure, normalise_density

Sdf = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

def _sphere(c: tuple[float, float, float], r: float) -> Sdf:
    return lambda x, y, z: np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) - r


def _capsule(a: tuple[float, float, float], b: tuple[float, float, float], r: float) -> Sdf:
    a_, b_ = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    ab = b_ - a_

    def sdf(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        px, py, pz = x - a_[0], y - a_[1], z - a_[2]
        t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / float(ab @ ab), 0, 1)
        return np.sqrt((px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2 + (pz - t * ab[2]) ** 2) - r

    return sdf


def _union(*parts: Sdf) -> Sdf:
    return lambda x, y, z: np.minimum.reduce([p(x, y, z) for p in parts])


def _shell(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.abs(np.sqrt(x**2 + y**2 + z**2) - 80.0) - 14.0


def _ring(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.sqrt((np.sqrt(x**2 + y**2) - 65.0) ** 2 + z**2) - 22.0


def _disc(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    radial = np.sqrt(x**2 + y**2) - 85.0
    axial = np.abs(z) - 16.0
    outside = np.sqrt(np.maximum(radial, 0) ** 2 + np.maximum(axial, 0) ** 2)
    return outside + np.minimum(np.maximum(radial, axial), 0)


_T = 55.0 / np.sqrt(3.0)  # tetrahedron vertices at 55 A from the centre

SHAPES: dict[str, Sdf] = {
    "shell": _shell,
    "rod": _capsule((0, 0, -75), (0, 0, 75), 26),
    "ring": _ring,
    "dumbbell": _union(_sphere((-55, 0, 0), 38), _sphere((55, 0, 0), 38), _capsule((-55, 0, 0), (55, 0, 0), 14)),
    "tetramer": _union(*(_sphere((sx * _T, sy * _T, sx * sy * _T), 32) for sx in (1, -1) for sy in (1, -1))),
    "disc": _disc,
    "elbow": _union(_capsule((-35, -35, 0), (65, -35, 0), 24), _capsule((-35, -35, 0), (-35, 65, 0), 24)),
}


def shape_names() -> list[str]:
    """Names of the built-in procedural shapes, in their fixed class order."""
    return list(SHAPES)


def render_shape(name: str, voxel_size: float = 10.0) -> Structure:
    """Render a built-in shape at ``voxel_size`` in a cube that holds it: a normalised :class:`Structure`."""
    if name not in SHAPES:
        raise InputError(f"unknown built-in shape '{name}': expected one of {', '.join(SHAPES)}")
    if voxel_size <= 0:
        raise InputError(f"voxel size must be positive, found {voxel_size}")
    m = int(np.ceil(240.0 / voxel_size)) + 4
    m += m % 2
    axis = (np.arange(m, dtype=np.float32) - (m - 1) / 2) * voxel_size
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")  # (m, m, m) each, angstrom
    sdf = SHAPES[name](x, y, z)
    density = 0.5 * (1 - np.tanh(sdf / (0.5 * voxel_size)))  # soft edge half a voxel wide
    return Structure(name, normalise_density(density), voxel_size, f"builtin:{name}")


def builtin_structures(names: list[str] | None = None, voxel_size: float = 10.0) -> list[Structure]:
    """Render the named built-in shapes (all of them by default)."""
    return [render_shape(n, voxel_size) for n in (names or shape_names())]
