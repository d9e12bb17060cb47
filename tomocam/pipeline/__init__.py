"""Explaining a whole tomogram on Dask: plan (:mod:`.plan`), phase 1 explaining the tiles block by block
(:mod:`.explain_tiles`), phase 2 stitching boxes of heatmaps and labels (:mod:`.stitch_boxes`), finalize
(:mod:`.finalize`), driven by a streaming scheduler (:mod:`.schedule`); the store is written through
:class:`tomocam.store.writer.StoreWriter`."""

from tomocam.pipeline.config import ExplainConfig
from tomocam.pipeline.plan import Plan, make_plan
from tomocam.pipeline.run import RunSummary, explain_tomogram

__all__ = ["ExplainConfig", "Plan", "RunSummary", "explain_tomogram", "make_plan"]
