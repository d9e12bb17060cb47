"""Finalize a run: pyramids, labels, scores, OME-Zarr metadata, provenance, and last the completion marker."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from tomocam.pipeline.plan import Plan
from tomocam.write import ome
from tomocam.write.pyramid import label_threshold, n_levels_for, write_heatmap_pyramid, write_labels, write_scores
from tomocam.write.store import METHOD_GROUPS, update_attrs

BACKGROUND_NAMES = ("background", "bg", "noise")


def finalize(plan: Plan, label_fraction: float) -> dict[str, Any]:
    """Write everything derived from the level-0 heatmaps (not yet the completion marker); returns new attrs."""
    root = zarr.open_group(plan.store, mode="r+")
    shape = plan.tomogram.shape
    vs = plan.tomogram.voxel_size
    levels = n_levels_for(shape, plan.chunk)
    names = list(plan.class_names)
    coarsest: dict[str, np.ndarray] = {}
    for method in plan.methods:
        group = root[METHOD_GROUPS[method]]
        write_heatmap_pyramid(group, levels)
        coarsest[method] = np.asarray(group[str(levels - 1)][...])  # (k, ...) small
        lo, hi = float(coarsest[method].min()), float(coarsest[method].max())
        group.attrs["ome"] = ome.image_metadata(METHOD_GROUPS[method], vs, levels, names, (lo, hi))
    first = plan.methods[0]
    threshold = label_threshold(coarsest[first].max(axis=0), label_fraction)
    ignore = tuple(i for i, n in enumerate(names) if n.lower() in BACKGROUND_NAMES)
    labels = root.create_group("labels", overwrite=True)
    labels.attrs["ome"] = {"version": ome.NGFF_VERSION, "labels": ["segmentation"]}
    seg = labels.create_group("segmentation")
    write_labels(root[METHOD_GROUPS[first]], seg, levels, threshold, ignore)
    seg.attrs["ome"] = ome.label_metadata("segmentation", vs, levels, names, f"../../{METHOD_GROUPS[first]}")
    scores = root.create_group("scores", overwrite=True)
    write_scores(root["tiles"]["logits"], scores)
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
        "levels": levels,
        "labels": {"method": first, "threshold": threshold, "fraction": label_fraction, "ignored": [names[i] for i in ignore]},
    }
    update_attrs(plan.store, **fields)
    return fields
