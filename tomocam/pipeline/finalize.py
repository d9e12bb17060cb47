"""Finalize a run: scores and OME-Zarr metadata, once every heatmap and label level is written (the completion
marker follows, :meth:`tomocam.store.writer.StoreWriter.complete`).

Phase 2 wrote every level of the heatmaps and labels from memory, so nothing here reads a level back but the
coarsest heatmap level (small: about one chunk per class) for the contrast limits.

Idempotent: the scores are skipped when the store's manifest proves them whole and otherwise rewritten in full and
then recorded, so a run killed anywhere in finalize is completed correctly by ``--resume``. Metadata (OME
attributes) is rewritten every time.
"""

from __future__ import annotations

from typing import Any

from tomocam.store.writer import StoreWriter


def finalize(writer: StoreWriter, threshold: float, label_fraction: float) -> dict[str, Any]:
    """Write everything derived from phase 2's arrays (not yet the completion marker); returns the new root
    attributes (how the labels were made: ``threshold``, ``label_fraction``)."""
    writer.write_ome_metadata()
    writer.write_scores()
    return writer.record_labels(threshold, label_fraction)
