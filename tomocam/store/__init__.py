"""The explain store's one owner: schema and sampling (:mod:`.layout`), creation and provenance (:mod:`.create`),
OME-Zarr metadata (:mod:`.ome`), pyramid, labels and scores (:mod:`.pyramid`), and the reader (:mod:`.reader`,
:mod:`.space`, :mod:`.select`); one writer at a time (:mod:`.lock`)."""

from tomocam.store.layout import use_fast_pipeline
from tomocam.store.lock import StoreLock
from tomocam.store.reader import ExplainStore, open_store

# Every module that reads or writes a store imports this package first, in the client and in every worker process.
use_fast_pipeline()

__all__ = ["ExplainStore", "StoreLock", "open_store"]
