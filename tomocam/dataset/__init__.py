"""Datasets: many tomograms in one run. Which tomograms (:mod:`.sources`), their store names (:mod:`.names`),
the index beside the stores (:mod:`.index`) and the run on one warm cluster (:mod:`.run`)."""

from tomocam.dataset.index import INDEX_NAME, DatasetIndex, IndexRow, read_index
from tomocam.dataset.names import store_names
from tomocam.dataset.run import DatasetSummary, explain_dataset, store_path
from tomocam.dataset.sources import DEFAULT_EXCLUDE, is_dataset, resolve_dataset

__all__ = ["DEFAULT_EXCLUDE", "INDEX_NAME", "DatasetIndex", "DatasetSummary", "IndexRow", "explain_dataset",
           "is_dataset", "read_index", "resolve_dataset", "store_names", "store_path"]
