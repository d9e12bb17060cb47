"""Finalize a run: scores, OME-Zarr metadata; then the completion marker.

Phase 2 wrote every level of the heatmaps and labels from memory, so nothing here reads a level back but the
coarsest heatmap level (small: about one chunk per class) for the contrast limits.

Idempotent: the scores are skipped when the store's manifest proves them whole and otherwise rewritten in full and
then recorded, so a run killed anywhere in finalize is completed correctly by ``--resume``. Metadata (OME
attributes) is rewritten every time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import zarr

from tomocam.classes import background_indices
from tomocam.pipeline.plan import Plan
from tomocam.store import ome
from tomocam.store.create import heatmap_levels, label_levels
from tomocam.store.manifest import forget_whole, is_whole, record_whole, update_attrs
from tomocam.store.pyramid import write_scores


def _unless_whole(store: str, names: list[str], write: Callable[[], None]) -> None:
    """Run ``write`` (which writes the arrays ``names`` in full) and record them whole, unless they are already."""
    if not is_whole(store, names):
        forget_whole(store, *names)
        write()
        record_whole(store, *names)


def finalize(plan: Plan, threshold: float, label_fraction: float) -> dict[str, Any]:
    """Write everything derived from phase 2's arrays (not yet the completion marker); returns new attrs."""
    root = zarr.open_group(plan.store, mode="r+")
    vs = plan.tomogram.voxel_size
    levels = heatmap_levels(plan)
    names = list(plan.class_names)
    sampling = plan.sampling
    for method in plan.methods:
        group = root[method]
        coarsest = np.asarray(group[str(levels - 1)][...], dtype=np.float32)  # (k, ...) small
        lo, hi = float(coarsest.min()), float(coarsest.max())
        group.attrs["ome"] = ome.image_metadata(method, vs, levels, names, (lo, hi),
                                                sampling.step, sampling.offset)
    first = plan.label_method
    ignore = background_indices(names)
    labels = root["labels"]
    labels.attrs["ome"] = {"version": ome.NGFF_VERSION, "labels": ["segmentation"]}
    labels["segmentation"].attrs["ome"] = ome.label_metadata("segmentation", vs, label_levels(plan), names,
                                                             f"../../{first}")
    scores = root.require_group("scores")
    _unless_whole(plan.store, ["scores/logits", "scores/probabilities"],
                  lambda: write_scores(root["tiles"]["logits"], scores))
    stride_a = [s * v for s, v in zip(plan.grid.stride, vs)]
    centre_a = [(t - 1) / 2 * v for t, v in zip(plan.grid.tile, vs)]
    scores.attrs.update(
        {
            "classes": list(plan.model_classes),
            "axes": ["c", "z", "y", "x"],
            "scale": stride_a,
            "translation": centre_a,
            "unit": "angstrom",
            "tile_starts": [s.tolist() for s in plan.grid.starts],
            "note": "the last tile on each axis is clamped to the edge: its start is in tile_starts",
        }
    )
    fields = {
        "labels": {"method": first, "threshold": threshold, "fraction": label_fraction,
                   "ignored": [names[i] for i in ignore]},
    }
    update_attrs(plan.store, **fields)
    return fields
