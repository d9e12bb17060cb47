"""The data a model is trained and evaluated on: the fit/validation/test split (stratified by class over boxes,
or whole tomograms held out), the hash that tells whether a dataset is the one a model saw, and reading boxes as
model inputs.

Training (:mod:`tomocam.train`) draws the split from a seed and records it in the checkpoint; evaluation
(:mod:`tomocam.evaluate.table1`) rebuilds the same test split from that record (:func:`rebuild_split`).

Boxes cut from one tomogram are neighbours (shifted boxes of one particle overlap; all share its noise, wedge and
defocus), so a split by box lets test boxes be near copies of training ones, and its accuracy says little about a
new tomogram. ``split_by_tomogram`` holds out whole tomograms for test; validation (which only picks the best
epoch) is drawn by box from the training tomograms.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tomocam.errors import InputError
from tomocam.simulate.dataset import Dataset

#: How a dataset can be split: boxes stratified by class, or whole tomograms held out.
SPLIT_BY = ("box", "tomogram")


@dataclass(frozen=True)
class Split:
    """Indices ``(m,)`` into a dataset for fitting, validation and test; with a split by tomogram, the names of
    the tomograms held out for test and of those trained on."""

    fit: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_tomograms: tuple[str, ...] = field(default=())
    train_tomograms: tuple[str, ...] = field(default=())

    def record(self, seed: int, test_fraction: float, val_fraction: float) -> dict[str, Any]:
        """What a checkpoint keeps of the split (plain types), enough for :func:`rebuild_split`."""
        by = "tomogram" if self.test_tomograms else "box"
        return {"by": by, "seed": seed, "test_fraction": test_fraction, "val_fraction": val_fraction,
                "n_fit": len(self.fit), "n_val": len(self.val), "n_test": len(self.test),
                "test_tomograms": list(self.test_tomograms), "train_tomograms": list(self.train_tomograms)}


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
    fit, val, test = (np.sort(np.concatenate(parts[k])) if parts[k] else np.zeros(0, int)
                      for k in ("fit", "val", "test"))
    return Split(fit, val, test)


def split_by_tomogram(labels: np.ndarray, tomograms: np.ndarray, seed: int, *,
                      test_tomograms: Sequence[str] | None = None, test_fraction: float = 0.2,
                      val_fraction: float = 0.2, classes: Sequence[str] | None = None) -> Split:
    """Hold out whole tomograms: every box of ``test_tomograms`` (default: ``test_fraction`` of the tomograms,
    at least one, drawn from ``seed``) is a test box; the other tomograms' boxes are split by class, ``val_fraction``
    to validation (:func:`split_indices`). ``labels`` and ``tomograms`` ``(n,)`` give each box's class and tomogram.

    Raises :class:`InputError` for an unknown test tomogram, no tomogram left to train on, or a class (named from
    ``classes``) with fewer than two boxes in the training tomograms (one to fit, one to validate).
    """
    names = sorted(set(np.asarray(tomograms).tolist()))
    if len(names) < 2:
        raise InputError(f"a split by tomogram needs boxes of at least two tomograms, found {len(names)}")
    if test_tomograms:
        unknown = [t for t in test_tomograms if t not in names]
        if unknown:
            raise InputError(f"test tomogram '{unknown[0]}' has no box in the dataset (its tomograms: "
                             f"{', '.join(names)})")
        held = sorted(set(test_tomograms))
    else:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x70A0]))
        n_test = min(len(names) - 1, max(1, int(round(len(names) * test_fraction))))
        held = sorted(rng.permutation(names)[:n_test].tolist())
    train = [n for n in names if n not in held]
    if not train:
        raise InputError(f"every tomogram ({', '.join(names)}) is held out for test: none is left to train on")
    is_test = np.isin(tomograms, held)
    for c in np.unique(labels):
        n_train = int(((labels == c) & ~is_test).sum())
        if n_train < 2:
            name = classes[int(c)] if classes is not None else str(c)
            raise InputError(f"class '{name}' has {n_train} box(es) in the training tomograms ({', '.join(train)}): "
                             "too few to fit and validate; annotate more of it, or hold out other tomograms")
    inner = np.flatnonzero(~is_test)
    part = split_indices(labels[inner], seed, test_fraction=0.0, val_fraction=val_fraction)
    return Split(fit=inner[part.fit], val=inner[part.val], test=np.flatnonzero(is_test),
                 test_tomograms=tuple(held), train_tomograms=tuple(train))


def make_split(dataset: Dataset, seed: int, *, by: str = "box", test_tomograms: Sequence[str] | None = None,
               test_fraction: float = 0.2, val_fraction: float = 0.2) -> Split:
    """The split of ``dataset`` ``by`` box (stratified, :func:`split_indices`) or by tomogram
    (:func:`split_by_tomogram`; the dataset must come from ``tomocam extract``)."""
    if by not in SPLIT_BY:
        raise InputError(f"unknown split {by!r}; expected one of {SPLIT_BY}")
    if by == "box":
        if test_tomograms:
            raise InputError("test tomograms are held out only in a split by tomogram (--split-by tomogram)")
        return split_indices(dataset.labels, seed, test_fraction, val_fraction)
    if dataset.box_tomograms is None:
        raise InputError(f"dataset '{dataset.path}' records no tomogram per box (it was not made by 'tomocam "
                         "extract'): split it by box")
    return split_by_tomogram(dataset.labels, dataset.box_tomograms, seed, test_tomograms=test_tomograms,
                             test_fraction=test_fraction, val_fraction=val_fraction, classes=dataset.classes)


def rebuild_split(dataset: Dataset, record: dict[str, Any]) -> Split:
    """The split a checkpoint records (:meth:`Split.record`), rebuilt on the same dataset."""
    by = str(record.get("by", "box"))
    return make_split(dataset, int(record["seed"]), by=by, test_tomograms=record.get("test_tomograms") or None,
                      test_fraction=float(record["test_fraction"]), val_fraction=float(record["val_fraction"]))


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
