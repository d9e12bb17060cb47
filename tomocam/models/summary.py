"""What ``tomocam info`` shows about a model: every layer with its output shape (to choose ``--layer``) and a
short account of how it was trained, from the checkpoint's provenance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class LayerInfo:
    """One named module: dotted name, class name, output shape without the batch axis (None if not a tensor)."""

    name: str
    kind: str
    shape: tuple[int, ...] | None

    @property
    def explainable(self) -> bool:
        """Whether a CAM can be taken here: the output has channels and at least one spatial axis."""
        return self.shape is not None and len(self.shape) >= 2


def layer_shapes(model: nn.Module, input_shape: Sequence[int]) -> list[LayerInfo]:
    """Run one zero input of ``input_shape`` (``(c, *spatial)``, no batch axis) and record each module's output.

    Modules are listed in ``named_modules()`` order; the model's mode is left as found and all hooks are removed.
    """
    shapes: dict[str, tuple[int, ...] | None] = {}
    handles = []

    def hook(name: str):
        def record(_m: nn.Module, _i: tuple, out: object) -> None:
            shapes.setdefault(name, tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else None)
        return record

    named = [(n, m) for n, m in model.named_modules() if n]
    was_training = model.training
    try:
        for name, module in named:
            handles.append(module.register_forward_hook(hook(name)))
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [LayerInfo(n, type(m).__name__, shapes.get(n)) for n, m in named]


def _number(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _acquisition(acq: dict[str, Any], sampling: dict[str, Any]) -> str:
    snr = acq.get("snr")
    parts = [f"SNR {snr:g}" if isinstance(snr, (int, float)) else None,
             f"tilt +-{acq['tilt_range']:g} deg" if isinstance(acq.get("tilt_range"), (int, float)) else None,
             None if acq.get("ctf", True) else "no CTF"]
    if isinstance(sampling.get("min_snr"), (int, float)) and isinstance(snr, (int, float)):
        parts[0] = f"SNR {sampling['min_snr']:g} to {snr:g}"
    return ", ".join(p for p in parts if p)


def training_summary(provenance: dict[str, Any]) -> list[tuple[str, str]]:
    """How a checkpoint's model was trained, in a few ``(label, text)`` rows: best epoch and accuracies, the data
    and the split, the command. Only what the provenance records is shown; an empty list when it records none of
    it (a model saved by hand). The per-epoch history is left to :func:`history_rows`."""
    p = provenance
    rows: list[tuple[str, str]] = []
    accuracy = [f"{name} accuracy {_number(p[key])}" for name, key in
                (("validation", "val_accuracy"), ("test", "test_accuracy")) if isinstance(p.get(key), (int, float))]
    if "best_epoch" in p or accuracy:
        epochs = f"best epoch {p['best_epoch']} of {p.get('epochs', '?')}" if "best_epoch" in p else ""
        rows.append(("trained", "; ".join(x for x in (epochs, ", ".join(accuracy)) if x)))
    if "dataset" in p:
        attrs = p.get("dataset_attrs") or {}
        sampling = attrs.get("sampling") or {}
        per_class = attrs.get("n_per_class")
        details = [f"{per_class} boxes per class" if isinstance(per_class, int) else
                   ", ".join(f"{n} {c}" for c, n in per_class.items()) if isinstance(per_class, dict) else "",
                   f"{attrs['box']}^3" if attrs.get("box") else "",
                   _acquisition(attrs.get("acquisition") or {}, sampling),
                   f"shift <= {sampling['max_shift']:g} voxels" if sampling.get("max_shift") is not None else "",
                   f"{sampling['distractors']:g} neighbours per box" if sampling.get("distractors") else ""]
        details = [d for d in details if d]
        rows.append(("data", p["dataset"] + (f" ({', '.join(details)})" if details else "")))
        if attrs.get("tomograms"):  # cut from tomograms by tomocam extract
            rows.append(("tomograms", ", ".join(f"{t['name']} ({t['boxes']} boxes)" for t in attrs["tomograms"])))
        if attrs.get("tables"):
            rows.append(("tables", ", ".join(str(t["path"]) for t in attrs["tables"])))
    split = p.get("split") or {}
    if {"n_fit", "n_val", "n_test"} <= split.keys():
        held = (f"; test tomograms {', '.join(split['test_tomograms'])}" if split.get("test_tomograms") else "")
        rows.append(("split", f"fit {split['n_fit']}, validation {split['n_val']}, test {split['n_test']} boxes"
                              + (f" (seed {split['seed']})" if "seed" in split else "") + held))
    if p.get("command"):
        rows.append(("command", str(p["command"])))
    return rows


HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")


def history_rows(provenance: dict[str, Any]) -> list[tuple[str, ...]]:
    """The per-epoch training history as table rows of :data:`HISTORY_COLUMNS` (formatted), oldest first."""
    return [tuple(_number(record.get(c, ""), 4) for c in HISTORY_COLUMNS) for record in provenance.get("history") or []]
