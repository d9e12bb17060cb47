"""Explaining a whole tomogram on Dask: plan, phase 1 (CAMs per block of tiles), phase 2 (stitching per output
chunk), finalize (pyramid, labels, scores, provenance, completion marker)."""

from tomocam.pipeline.config import ExplainConfig
from tomocam.pipeline.plan import Plan, make_plan
from tomocam.pipeline.run import RunSummary, explain_tomogram

__all__ = ["ExplainConfig", "Plan", "RunSummary", "explain_tomogram", "make_plan"]
