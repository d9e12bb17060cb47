"""Figures of an explain store: orthogonal slices with heatmap overlays, and a class montage.

Only what is drawn is read: one plane per panel, from the coarsest pyramid level that still has the figure's
resolution (:func:`tomocam.store.space.choose_level`), and the tomogram (the store's input MRC, memory-mapped)
read with a stride to the same resolution. Planes are placed in angstrom, so heatmap and tomogram overlay
exactly whatever their levels. Heatmaps are shown in score units, never normalised: colour limits are
symmetric around zero; in an overview each (class, method) group of panels shares one, in a montage each class
has its own (classes differ in scale by orders of magnitude), stated on the figure.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from tomocam.explain.methods import METHOD_TITLES
from tomocam.render.overlay import CMAP, Extent, draw_overlay, extent, norm, symmetric_limit
from tomocam.store import ExplainStore
from tomocam.store.select import ChannelView, select_classes, select_methods
from tomocam.store.space import VoxelSpace, choose_level, level_space

#: Plane name -> (the fixed axis, (row axis, column axis)) in (z, y, x) order.
PLANES: dict[str, tuple[int, tuple[int, int]]] = {"xy": (0, (1, 2)), "xz": (1, (0, 2)), "yz": (2, (0, 1))}
AXIS_NAMES = "zyx"


@dataclass(frozen=True)
class Plane:
    """One drawn plane: values `(rows, cols)` and their ``imshow`` extent in angstrom."""

    values: np.ndarray
    extent: Extent


def read_plane(volume, grid: VoxelSpace, plane: str, position: np.ndarray, step: int = 1) -> Plane:
    """The ``plane`` (``"xy"``, ``"xz"``, ``"yz"``) of a `(z, y, x)` volume through ``position`` (angstrom).

    Reads only that plane (every ``step``-th voxel of it); the fixed index is the voxel nearest
    ``position``, clipped to the volume.
    """
    fixed, (r, c) = PLANES[plane]
    shape = volume.shape[-3:]
    index = int(np.clip(np.rint(grid.to_index(position)[fixed]), 0, shape[fixed] - 1))
    key: list[slice | int] = [slice(None, None, step)] * 3
    key[fixed] = index
    values = np.asarray(volume[tuple(key)], dtype=np.float32)  # (rows, cols)
    vs, org = grid.voxel_size, grid.origin
    rows, cols = values.shape
    return Plane(values, extent(rows, cols, org[r], org[c], vs[r] * step, vs[c] * step))


def centre(store: ExplainStore) -> np.ndarray:
    """Position (angstrom, z, y, x) of the tomogram's central voxel."""
    shape = np.asarray(store.heatmap(store.methods[0], 0).shape[1:])
    return VoxelSpace(store.voxel_size).to_space(shape // 2)


def position_of(store: ExplainStore, at: Sequence[int] | None) -> np.ndarray:
    """``at`` (level-0 voxel z, y, x) as a position in angstrom; the centre when None."""
    return centre(store) if at is None else VoxelSpace(store.voxel_size).to_space(np.asarray(at, dtype=np.float64))


def pick_level(store: ExplainStore, method: str, pixels: int) -> int:
    """The coarsest level of ``method`` with at least ``pixels`` voxels along its longest axis."""
    shapes = [tuple(store.heatmap(method, lvl).shape[1:]) for lvl in range(store.n_levels)]
    return choose_level(shapes, pixels)


class _Background:
    """The store's input tomogram, memory-mapped, read with a stride giving about ``pixels`` per panel."""

    def __init__(self, store: ExplainStore, pixels: int) -> None:
        from tomocam.errors import InputError
        from tomocam.read.mrc import open_tomogram

        self.volume = None
        try:
            tomo = open_tomogram(store.input_path, voxel_size=store.voxel_size[0])
        except InputError as err:
            warnings.warn(f"drawing heatmaps without the tomogram: {err}", stacklevel=3)
            return
        self.volume = tomo.array()
        self.step = max(1, math.floor(max(tomo.shape) / pixels))
        self.grid = VoxelSpace(store.voxel_size)

    def plane(self, plane: str, position: np.ndarray) -> Plane | None:
        if self.volume is None:
            return None
        return read_plane(self.volume, self.grid, plane, position, self.step)


def _index_label(store: ExplainStore, plane: str, position: np.ndarray) -> str:
    fixed = PLANES[plane][0]
    index = int(np.rint(VoxelSpace(store.voxel_size).to_index(position)[fixed]))
    return f"{plane}, {AXIS_NAMES[fixed]}={index}"


def render_store(
    store: ExplainStore,
    *,
    classes: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    at: Sequence[int] | None = None,
    pixels: int = 256,
) -> Figure:
    """Orthogonal slices (xy, xz, yz) through ``at`` (level-0 voxel z, y, x; default the centre), one row
    per class (default: all), Respond-CAM and Grad-CAM side by side when both are chosen and present.

    Each (class, method) group of three panels shares a symmetric colour scale with a colour bar in score
    units. Panel titles read ``"<class> · <method> · <plane>, <axis>=<index>"``. ``pixels``: about how many
    pixels a panel's longest side needs; it selects the pyramid level and the tomogram stride.
    """
    classes = select_classes(store, classes)
    methods = select_methods(store, methods)
    position = position_of(store, at)
    background = _Background(store, pixels)
    n_cols = 3 * len(methods)
    fig = Figure(figsize=(2.6 * n_cols + 0.8 * len(methods), 2.6 * len(classes) + 0.6), layout="constrained")
    axes = fig.subplots(len(classes), n_cols, squeeze=False)
    levels = {m: pick_level(store, m, pixels) for m in methods}
    backs = {p: background.plane(p, position) for p in PLANES}
    for row, name in enumerate(classes):
        c = store.classes.index(name)
        for j, method in enumerate(methods):
            level = levels[method]
            array, grid = store.heatmap(method, level), level_space(store, method, level)
            heats = {p: read_plane(ChannelView(array, c), grid, p, position) for p in PLANES}
            limit = symmetric_limit(*(h.values for h in heats.values()))
            group = axes[row, 3 * j : 3 * j + 3]
            for ax, plane in zip(group, PLANES):
                back = backs[plane]
                image = draw_overlay(
                    ax, heats[plane].values, heats[plane].extent, limit,
                    None if back is None else back.values, None if back is None else back.extent,
                )
                ax.set_title(f"{name} · {METHOD_TITLES[method]} · {_index_label(store, plane, position)}",
                             fontsize=8)
            fig.colorbar(image, ax=list(group), shrink=0.8, label="score units")
    fig.suptitle(f"{_store_name(store)} — levels {', '.join(f'{m}: {levels[m]}' for m in methods)}", fontsize=10)
    return fig


def render_montage(
    store: ExplainStore,
    *,
    method: str = "respond",
    classes: Sequence[str] | None = None,
    at: Sequence[int] | None = None,
    pixels: int = 192,
) -> Figure:
    """The xy slice through ``at`` (default the centre) of every class (default: all) of one method.

    Each class has its own symmetric colour scale, from ``-L`` to ``+L`` with ``L`` its largest ``|value|`` in
    the slice (given in its title, score units): classes differ in scale by orders of magnitude, and one shared
    scale would show only the strongest. The figure says so; the colour bar runs from -1 to 1 in units of each
    panel's ``L``, so classes are compared through their ``L``.
    """
    from matplotlib.cm import ScalarMappable

    (method,) = select_methods(store, [method])
    classes = select_classes(store, classes)
    position = position_of(store, at)
    level = pick_level(store, method, pixels)
    array, grid = store.heatmap(method, level), level_space(store, method, level)
    back = _Background(store, pixels).plane("xy", position)
    heats = [read_plane(ChannelView(array, store.classes.index(n)), grid, "xy", position) for n in classes]
    n_cols = math.ceil(math.sqrt(len(classes)))
    n_rows = math.ceil(len(classes) / n_cols)
    fig = Figure(figsize=(2.4 * n_cols + 1.0, 2.4 * n_rows + 0.9), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, name, heat in zip(axes, classes, heats):
        limit = symmetric_limit(heat.values)
        draw_overlay(ax, heat.values, heat.extent, limit,
                     None if back is None else back.values, None if back is None else back.extent)
        ax.set_title(f"{name}  (L = {limit:.2g})", fontsize=9)
    for ax in axes[len(classes):]:
        fig.delaxes(ax)
    fig.colorbar(ScalarMappable(norm=norm(1.0), cmap=CMAP), ax=list(axes[: len(classes)]), shrink=0.8,
                 label="score / L of the panel (red: evidence for the class, blue: against)")
    fig.suptitle(f"{_store_name(store)} — {METHOD_TITLES[method]}, {_index_label(store, 'xy', position)}, "
                 f"level {level}\ncolour scale per class: each panel from -L to +L, L = its largest |score| "
                 "(in its title, score units)", fontsize=10)
    return fig


def _store_name(store: ExplainStore) -> str:
    from pathlib import Path

    return Path(store.path).name
