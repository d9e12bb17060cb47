"""Writing and reading the explain store: one OME-Zarr 0.5 (zarr v3) group per run (layout in store.md)."""

from tomocam.write.store import ExplainStore, open_store

__all__ = ["ExplainStore", "open_store"]
