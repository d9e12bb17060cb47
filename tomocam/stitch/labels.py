"""Labels of a region straight from the per-tile maps, one small sub-box at a time (pure array maths).

A voxel's label is the class whose stitched value is largest, when that value exceeds a threshold
(:func:`tomocam.store.pyramid.label_block` applied to :func:`tomocam.stitch.stitch_region`'s field). Stitching
every class over a large box first costs ``k`` full-grid volumes and dense products over every tile of the box,
although each voxel is covered by only a few tiles (two per axis at the default stride of half a tile).

:func:`label_region` cuts each axis of the region at the tile edges into pieces that the same few tiles cover
(:func:`axis_pieces`) and labels each sub-box (a product of pieces) from those tiles alone, so the products are
small and a sub-box's field stays in cache. Before stitching it, an exact bound drops the classes that cannot
reach the threshold there: the blend weights are >= 0 (windows and interpolation weights), so the field of
class ``c`` at voxel ``x`` is a non-negative combination of the covering tiles' map values whose weights sum to
``R(x)``, the product over axes of the operator's row sums, and therefore
``field_c(x) <= max_t max(m_t,c) * max R`` (``* min R`` when that maximum is negative). A class that stays at or
below the threshold never labels a voxel, nor changes which class does where another wins, so dropping it leaves
every label unchanged; a sub-box where no class that may label a voxel (background classes never do) can reach
the threshold is all zeros without any product.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tomocam.device import map_on_threads
from tomocam.stitch.blend import axis_operator, blend

#: Relative slack on the skip bound: float32 stitching may exceed the exact bound by a few rounding steps,
#: so a class is skipped only when it stays this far (relative to its largest map magnitude) below the threshold.
BOUND_SLACK = 1e-5


@dataclass(frozen=True)
class Piece:
    """Voxels ``[lo, hi)`` of one axis, the tiles covering them and their blend operator."""

    lo: int
    hi: int
    tiles: slice  # indices into the region's tiles on this axis
    op: torch.Tensor  # (hi - lo, n_tiles * feat) float32, as :func:`tomocam.stitch.axis_operator`
    row_sums: tuple[float, float]  # smallest and largest row sum of ``op``


def axis_pieces(lo: int, hi: int, starts: np.ndarray, tile: int, feat: int, window: str, edge: int) -> list[Piece]:
    """``[lo, hi)`` cut at every tile start and end, neighbouring cuts merged while a piece has at most ``edge``
    voxels (a piece between two cuts further apart stays whole); each piece with its covering tiles."""
    starts = np.asarray(starts, dtype=np.int64)
    cuts = sorted({lo, hi} | {int(c) for s in starts for c in (s, s + tile) if lo < c < hi})
    bounds = []
    start = end = lo
    for c in cuts[1:]:
        if c - start > edge and end > start:
            bounds.append((start, end))
            start = end
        end = c
    bounds.append((start, end))
    pieces = []
    for a, b in bounds:
        first = int(np.searchsorted(starts + tile, a, side="right"))  # first tile ending after a
        last = int(np.searchsorted(starts, b, side="left"))  # tiles starting before b
        op = axis_operator(np.arange(a, b), starts[first:last], tile, feat, window)
        sums = op.double().sum(1)
        pieces.append(Piece(a, b, slice(first, last), op, (float(sums.min()), float(sums.max()))))
    return pieces


def map_bounds(maps: torch.Tensor, n_feat: int) -> torch.Tensor:
    """Per tile and class, the largest value and the largest magnitude of feature-resolution maps with
    ``n_feat`` feature axes: ``(..., k, *feat)`` -> ``(..., k, 2)`` on the same device. With the blend's row
    sums they bound the stitched field (module docstring); the magnitude sets the scale of float rounding
    (:data:`BOUND_SLACK`)."""
    flat = maps.reshape(*maps.shape[: maps.dim() - n_feat], -1)  # (..., k, cells)
    top = flat.amax(-1)
    return torch.stack([top, torch.maximum(top, -flat.amin(-1))], dim=-1)


def _live(top: np.ndarray, size: np.ndarray, r_min: float, r_max: float, threshold: float) -> np.ndarray:
    """Indices of the classes that may exceed ``threshold`` where the tiles of ``top`` and ``size`` (``(..., k)``,
    as :func:`map_bounds`) cover every voxel with row sums in ``[r_min, r_max]``."""
    k = top.shape[-1]
    best = top.reshape(-1, k).max(0)  # (k,)
    bound = np.where(best >= 0, best * r_max, best * r_min)
    slack = BOUND_SLACK * size.reshape(-1, k).max(0) * r_max
    return np.flatnonzero(bound + slack > threshold)


def live_classes(
    lo: Sequence[int],
    hi: Sequence[int],
    starts: Sequence[np.ndarray],
    bounds: np.ndarray,
    tile: Sequence[int],
    feat: Sequence[int],
    window: str,
    threshold: float,
) -> np.ndarray:
    """The classes that may exceed ``threshold`` anywhere in the voxel box ``[lo, hi)``, from the
    :func:`map_bounds` ``(*t, k, 2)`` of the tiles covering it: the others never label a voxel there nor change
    which class does, so they need not be read (a phase-2 box where no class may exceed it needs no maps)."""
    sums = []
    for d in range(len(lo)):
        op = axis_operator(np.arange(lo[d], hi[d]), starts[d], tile[d], feat[d], window).double().sum(1)
        sums.append((float(op.min()), float(op.max())))
    r_min, r_max = float(np.prod([a for a, _ in sums])), float(np.prod([b for _, b in sums]))
    return _live(bounds[..., 0], bounds[..., 1], r_min, r_max, threshold)


def label_region(
    lo: Sequence[int],
    hi: Sequence[int],
    starts: Sequence[np.ndarray],
    maps: np.ndarray,
    tile: Sequence[int],
    window: str,
    threshold: float,
    ignore: Sequence[int] = (),
    dtype: str = "uint8",
    edge: int | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Labels ``(*shape)`` of the voxel box ``[lo, hi)``: argmax + 1 of the stitched field where its maximum
    exceeds ``threshold``, else 0, as ``label_block(stitch_region(...))`` gives (to float rounding where the two
    largest classes, or the largest and the threshold, are within rounding of each other).

    Args:
        lo: the box's first voxel, one entry per spatial axis.
        hi: the box's past-the-end voxel, one entry per spatial axis.
        starts: per axis, the start voxels ``(t_d,)`` of the tiles covering the box (a product grid).
        maps: ``(*t, k, *feat)`` feature-resolution maps of those tiles.
        tile: the tile size per axis.
        window: blend window kind (:data:`tomocam.stitch.window.WINDOWS`).
        threshold: a voxel is labelled only where its largest class value exceeds this.
        ignore: classes (background) that never label a voxel; where one is the largest the label is 0.
        dtype: the labels' integer type.
        edge: largest sub-box edge in voxels, see :func:`axis_pieces`. Default: a tile on a CPU (covered by three
            tiles at the usual stride: smaller sub-boxes pay more overhead, larger ones larger products), two
            tiles on a GPU, where each sub-box costs kernel launches (docs/architecture.md, "Design decisions").
        device: where the products run.
    """
    nd = len(lo)
    return label_region_by_classes(lo, hi, starts, [(0, maps)], maps.shape[nd], tile, window, threshold, ignore,
                                   dtype, edge, device)


def label_region_by_classes(
    lo: Sequence[int],
    hi: Sequence[int],
    starts: Sequence[np.ndarray],
    groups: Iterable[tuple[int, np.ndarray]],
    n_classes: int,
    tile: Sequence[int],
    window: str,
    threshold: float,
    ignore: Sequence[int] = (),
    dtype: str = "uint8",
    edge: int | None = None,
    device: str = "cpu",
    select_live: bool | None = None,
    classes: Sequence[int] | np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """:func:`label_region` from the maps of the classes in groups, one group in memory at a time: ``groups``
    yields ``(first, maps)``, ``maps`` ``(*t, g, *feat)`` the classes ``classes[first .. first + g - 1]``, in
    ascending order; ``classes`` (default: all ``n_classes``) may leave out classes that cannot exceed the
    threshold in the box (:func:`live_classes`), with the same labels. The box keeps the largest value so far and
    its label; a later class takes a voxel only where it is strictly larger, so ties go to the first class, as
    :func:`max_and_argmax` does within a group.
    Memory: one group's maps and, with several groups, float32 values beside the labels for the sub-boxes where a
    class may exceed the threshold (none where no voxel is labelled), whatever the number of classes.

    ``select_live`` (default: on a CPU only) stitches only the classes that may exceed the threshold in each
    sub-box; otherwise every class of the group is stitched, with the same labels (a class that cannot exceed the
    threshold never wins above it), which suits a GPU: sending the selection there waits for all its queued work.
    The box's labels and values live on ``device``, so from a GPU only the final labels cross to the host.

    ``threads`` (default: the calling thread's torch threads on a CPU, else 1) label that many sub-boxes at once,
    each with one torch thread (:func:`tomocam.device.map_on_threads`); each sub-box is labelled by one thread
    alone, so the labels do not depend on it.
    """
    nd = len(lo)
    may_label = np.ones(n_classes, bool)
    may_label[list(ignore)] = False
    kept = np.arange(n_classes) if classes is None else np.asarray(classes, dtype=np.int64)  # the groups' classes
    select_live = device == "cpu" if select_live is None else select_live
    threads = (torch.get_num_threads() if device == "cpu" else 1) if threads is None else threads
    box: _BoxLabels | None = None
    for first, maps in groups:
        k = maps.shape[nd]
        if box is None:
            widths = [edge or (t if device == "cpu" else 2 * t) for t in tile]
            pieces = [axis_pieces(lo[d], hi[d], starts[d], tile[d], maps.shape[nd + 1 + d], window, widths[d])
                      for d in range(nd)]
            box = _BoxLabels(lo, hi, pieces, threshold, dtype, device, select_live)
        ids = kept[first : first + k]  # (k,) the group's class indices
        source = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)).to(device)  # (*t, k, *feat)
        bounds = map_bounds(source, nd).cpu().numpy()  # (*t, k, 2): the bounds are decided on the host
        label_of_class = np.where(may_label[ids], ids + 1, 0)  # (k,)
        group = _Group(source, bounds[..., 0], bounds[..., 1], label_of_class,
                       torch.from_numpy(label_of_class).to(device, box.best_label.dtype), whole=k == len(kept))
        map_on_threads(functools.partial(box.fold, group), box.sub_boxes(), threads)
    if box is None:  # no group: no class read, no voxel labelled
        return np.zeros(tuple(b - a for a, b in zip(lo, hi)), dtype)
    return box.labels()


@dataclass(frozen=True)
class _Group:
    """One class group's maps as :class:`_BoxLabels` folds them in."""

    source: torch.Tensor  # (*t, k, *feat) float32 maps, on the device
    top: np.ndarray  # (*t, k) largest value per tile and class (:func:`map_bounds`)
    size: np.ndarray  # (*t, k) largest magnitude per tile and class
    label_of_class: np.ndarray  # (k,) each class's label, 0 for a class that never labels (background)
    label_of_class_t: torch.Tensor  # the same on the device, in the labels' dtype
    whole: bool  # every class of the box is in this group: a sub-box's labels are final at once


class _BoxLabels:
    """The labels of a voxel box built group of classes by group (:func:`label_region_by_classes`): per voxel the
    label of the largest value so far and, where several groups may label a sub-box, those values. A sub-box is
    folded by one thread at a time, and different sub-boxes write different voxels, so threads may fold different
    sub-boxes of one group at once."""

    def __init__(self, lo: Sequence[int], hi: Sequence[int], pieces: list[list[Piece]], threshold: float,
                 dtype: str, device: str, select_live: bool):
        self.lo, self.pieces, self.threshold, self.device, self.select_live = lo, pieces, threshold, device, select_live
        self.ops = [[p.op.to(device) for p in axis] for axis in pieces]
        self.dtype = dtype
        self.np_dtype = np.uint8 if dtype == "uint8" else np.int32
        out_dtype = torch.uint8 if dtype == "uint8" else torch.int32  # torch's uint16 lacks the ops used here
        shape = tuple(b - a for a, b in zip(lo, hi))
        self.best_label = torch.zeros(shape, dtype=out_dtype, device=device)  # label of the largest value so far
        self.best_value: dict[tuple[int, ...], tuple[tuple[slice, ...], torch.Tensor]] = {}  # sub-box -> values

    def sub_boxes(self) -> Iterator[tuple[int, ...]]:
        """Every sub-box, as its piece index on each axis."""
        return itertools.product(*(range(len(axis)) for axis in self.pieces))

    def fold(self, group: _Group, choice: tuple[int, ...]) -> None:
        """Fold ``group``'s classes into the labels (and values) of the sub-box ``choice``."""
        nd, device, threshold = len(choice), self.device, self.threshold
        sub = [self.pieces[d][i] for d, i in enumerate(choice)]
        tiles = tuple(p.tiles for p in sub)
        r_min = float(np.prod([p.row_sums[0] for p in sub]))
        r_max = float(np.prod([p.row_sums[1] for p in sub]))
        live = _live(group.top[tiles], group.size[tiles], r_min, r_max, threshold)  # classes that may exceed it
        if not live.size or (group.whole and not group.label_of_class[live].any()):
            return  # nothing here can take a voxel from what the box holds
        ops = [self.ops[d][i] for d, i in enumerate(choice)]
        box = tuple(slice(p.lo - a, p.hi - a) for p, a in zip(sub, self.lo))
        if self.select_live:  # value and label (*piece shape) over the live classes only, on the host
            field = blend(group.source[tiles].index_select(nd, torch.from_numpy(live).to(device)), ops)
            top_value, top_index = max_and_argmax(field.cpu().numpy())
            label_np = group.label_of_class[live].astype(self.np_dtype)[top_index]
            if group.whole:  # every class at once, and every voxel in one sub-box: the labels, final
                self.best_label[box] = torch.from_numpy(np.where(top_value > threshold, label_np, 0)).to(device)
                return
            value = torch.from_numpy(top_value).to(device)
            label = torch.from_numpy(label_np).to(device)
        else:  # over every class of the group, all on the device
            value, index = blend(group.source[tiles], ops).max(dim=0)
            label = group.label_of_class_t[index]
            if group.whole:
                self.best_label[box] = torch.where(value > threshold, label, 0)
                return
        if choice not in self.best_value:  # the first group that may label voxels here: its values are the largest
            self.best_value[choice] = (box, value)
            self.best_label[box] = label
            return
        held = self.best_value[choice][1]
        larger = value > held
        self.best_value[choice] = (box, torch.where(larger, value, held))
        self.best_label[box] = torch.where(larger, label, self.best_label[box])

    def labels(self) -> np.ndarray:
        """The box's labels on the host, once every group is folded in: where several groups may label a sub-box,
        the largest values decide against the threshold only now."""
        for box, value in self.best_value.values():
            self.best_label[box] = torch.where(value > self.threshold, self.best_label[box], 0)
        return self.best_label.cpu().numpy().astype(self.dtype, copy=False)


def max_and_argmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest value and its first index along axis 0: ``(n, *s)`` -> two ``(*s)`` arrays.

    Two vectorised reductions (the maximum, then the first class equal to it) instead of ``argmax`` over a short
    leading axis, which numpy and torch loop over element by element.
    """
    n = x.shape[0]
    value = x.max(axis=0)
    rank = np.arange(n, 0, -1, dtype=np.min_scalar_type(n)).reshape(n, *(1,) * (x.ndim - 1))  # n .. 1
    first = n - ((x == value) * rank).max(axis=0)  # the largest rank among the maxima is the first of them
    return value, first
