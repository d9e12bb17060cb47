"""Particle picks of a whole explain store, and their scores against a known particle table.

Glue between the store and the pure maths of :mod:`tomocam.picking.peaks` and :mod:`tomocam.picking.scoring`: each
class channel of a heatmap level is searched block by block (the store's own chunks, a halo of one radius),
positions are converted to voxels of the tomogram's grid and to angstrom, and the result is one table for all
classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tomocam.picking.peaks import find_peaks
from tomocam.picking.scoring import PickScore, score_picks
from tomocam.picking.threshold import SIGMAS, robust_threshold
from tomocam.store import ExplainStore
from tomocam.store.select import ChannelView, select_classes
from tomocam.store.space import VoxelSpace, level_space
from tomocam.write.picks_table import picks_frame


def pick_store(
    store: ExplainStore,
    *,
    method: str = "respond",
    classes: Sequence[str] | None = None,
    threshold: float | None = None,
    radius: float,
    level: int = 0,
    exclusive: bool = True,
    sigmas: float = SIGMAS,
) -> pd.DataFrame:
    """Picks of every chosen class (default: all) in the ``method`` heatmaps at pyramid ``level``.

    ``threshold``: minimum heatmap value, score units; ``None`` chooses one per class from the data
    (:func:`tomocam.picking.threshold.robust_threshold` of all the class's peaks, ``sigmas`` robust standard
    deviations above their median). ``radius``: particle radius in angstrom; peaks of one class closer than this
    are suppressed. ``exclusive``: keep a class's peak only where that class has the highest heatmap of all the
    store's classes (a particle is one class; a class map also answers, more weakly, to particles of similar
    classes). Returns a :func:`tomocam.write.picks_table.picks_frame` table, coordinates in level-0 voxels
    (fractional at coarser levels) and angstrom, sorted by class then decreasing score; ``table.attrs
    ["thresholds"]`` holds the threshold used for each class.
    """
    array = store.heatmap(method, level)  # (c, z, y, x)
    grid = level_space(store, method, level)
    base = VoxelSpace(store.voxel_size)
    radius_vox = radius / min(grid.voxel_size)
    block = tuple(array.chunks[1:])
    frames, thresholds = [], {}
    for name in select_classes(store, classes):
        c = store.classes.index(name)
        # Peaks above a threshold are the peaks above -inf that pass it: suppression never lets a lower peak
        # remove a higher one, so the data-driven threshold can be chosen after one search.
        coords, scores = find_peaks(ChannelView(array, c), -np.inf if threshold is None else threshold,
                                    radius_vox, block)
        thresholds[name] = robust_threshold(scores, sigmas) if threshold is None else float(threshold)
        keep = scores > thresholds[name]
        coords, scores = coords[keep], scores[keep]
        if exclusive and len(coords):
            keep = winning_class(array, coords) == c
            coords, scores = coords[keep], scores[keep]
        voxels = base.to_index(grid.to_space(coords))  # (n, 3) level-0 voxels
        frames.append(picks_frame(voxels, scores, [name] * len(scores), np.full(len(scores), c), store.voxel_size))
    table = pd.concat(frames, ignore_index=True)
    table.attrs["thresholds"] = thresholds
    return table


def winning_class(array, coords: np.ndarray) -> np.ndarray:
    """Index of the highest channel of a `(c, z, y, x)` array at each of ``coords`` `(n, 3)`: `(n,)`.

    Reads only the chunks holding those voxels (a coordinate selection)."""
    k = array.shape[0]
    n = len(coords)
    sel = (np.repeat(np.arange(k), n), *(np.tile(coords[:, i], k) for i in range(3)))
    values = np.asarray(array.get_coordinate_selection(sel)).reshape(k, n)  # (k, n)
    return values.argmax(axis=0)


def evaluate_picks(
    picks: pd.DataFrame,
    truth: pd.DataFrame,
    tolerance: float,
    voxel_size: tuple[float, float, float],
    classes: Sequence[str] | None = None,
) -> tuple[dict[str, PickScore], PickScore]:
    """Precision/recall per class and overall of ``picks`` against ``truth`` (both with ``class_name, x, y,
    z`` in voxels), a pick matching a particle of its class at most ``tolerance`` angstrom away.

    Only the particles of ``classes`` (default: the classes that were picked) are counted, so a run over some
    classes is not charged with the particles of the others.
    """
    wanted = set(classes) if classes is not None else set(picks["class_name"])
    truth = truth[truth["class_name"].isin(wanted)]
    picks = picks[picks["class_name"].isin(wanted)]
    scale = np.asarray(voxel_size)[::-1]  # x, y, z

    def space(frame: pd.DataFrame) -> np.ndarray:
        return frame[["x", "y", "z"]].to_numpy(np.float64) * scale

    return score_picks(space(picks), picks["class_name"], space(truth), truth["class_name"], tolerance)
