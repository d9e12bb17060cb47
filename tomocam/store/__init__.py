"""The explain store's one owner: schema and sampling (:mod:`.layout`), creation and provenance (:mod:`.create`),
OME-Zarr metadata (:mod:`.ome`), pyramid, labels and scores (:mod:`.pyramid`), and the reader (:mod:`.reader`,
:mod:`.grid`, :mod:`.select`)."""

from tomocam.store.reader import ExplainStore, open_store

__all__ = ["ExplainStore", "open_store"]
