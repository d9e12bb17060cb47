"""The data a model is trained and evaluated on: the stratified fit/validation/test split, the hash that tells
whether a dataset is the one a model saw, and reading boxes as model inputs.

Training (:mod:`tomocam.train`) draws the split from a seed and records it in the checkpoint; evaluation
(:mod:`tomocam.evaluate.table1`) rebuilds the same test split from that record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from tomocam.errors import InputError
from tomocam.simulate.dataset import Dataset


@dataclass(frozen=True)
class Split:
    """Indices ``(m,)`` into a dataset for fitting, validation and test."""

    fit: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_indices(labels: np.ndarray, seed: int, test_fraction: float = 0.2, val_fraction: float = 0.2) -> Split:
    """Stratified split: per class, ``test_fraction`` to test, then ``val_fraction`` of the rest to validation.

    Deterministic in ``(labels, seed)``; each part sorted.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    parts: dict[str, list[np.ndarray]] = {"fit": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round((len(idx) - n_test) * val_fraction))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["fit"].append(idx[n_test + n_val:])
    return Split(**{k: np.sort(np.concatenate(v)) if v else np.zeros(0, int) for k, v in parts.items()})


def labels_digest(labels: np.ndarray) -> str:
    """A short hash of a label vector: tells whether an evaluation dataset is the one a model was trained on."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()[:16]


def load_inputs(dataset: Dataset, indices: np.ndarray | None = None, *, normalisation: str = "zscore") -> torch.Tensor:
    """Read boxes into memory as model inputs ``(m, 1, s, s, s)`` float32, normalised per box with
    :func:`tomocam.models.normalise` (``normalisation`` as the checkpoint records it)."""
    from tomocam.models import normalise

    vol = dataset.volumes[:] if indices is None else dataset.volumes.get_orthogonal_selection((indices,))
    x = torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32)).unsqueeze(1)
    if not torch.isfinite(x).all():
        raise InputError(f"dataset '{dataset.path}' contains NaN or infinite values")
    return normalise(x, normalisation)
