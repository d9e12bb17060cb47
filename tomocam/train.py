"""Training a classifier on a subtomogram dataset (simulated, or cut from tomograms by ``tomocam extract``).

Split (paper, section 3): train/test 4:1, then the training part 80/20 into fit/validation, stratified by class and
drawn from the seed; or, for boxes cut from tomograms, whole tomograms held out for test
(:func:`tomocam.evaluate.splits.make_split`). :mod:`tomocam.evaluate.table1` rebuilds the test split from the
checkpoint's provenance. Optional augmentation by axis flips (:func:`flip_boxes`), which keep a missing wedge that
is symmetric about the tilt axis, as every single-axis tilt series' is. Adam on cross-entropy; the checkpoint
keeps the weights of the epoch with the best validation accuracy (ties: lower validation loss). Inputs are
normalised with :func:`tomocam.models.normalise` ("zscore" per box, or "raw" as the authors fed them), the same
function tiles go through when explaining; the checkpoint records which. A time limit stops training after the
epoch in which it runs out (for a SLURM walltime or a fixed GPU budget).
"""

from __future__ import annotations

import copy
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tomocam.device import resolve_device
from tomocam.errors import CheckpointError, InputError
from tomocam.evaluate.splits import SPLIT_BY, Split, labels_digest, load_inputs, make_split
from tomocam.models.input_stats import summarise_inputs
from tomocam.simulate.dataset import Dataset


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """Logits ``(m, k)`` on CPU for inputs ``(m, 1, s, s, s)``, in batches, in eval mode."""
    model.eval()
    out = [model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0)


def _to_storage(x: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """Where the training boxes live: on the GPU when they take under half its free memory, else in host memory."""
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        if 2 * x.numel() * x.element_size() < free:
            return x.to(dev)
    return x


@dataclass
class TrainResult:
    """The trained model (best-validation weights), per-epoch ``history``, accuracies and the checkpoint path."""

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    val_accuracy: float
    test_accuracy: float
    checkpoint: Path | None
    provenance: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[str, dict[str, float]], None]


INITS = ("glorot", "none")
#: Fractions of the split: test (of all boxes or tomograms), then validation (of the rest).
TEST_FRACTION, VAL_FRACTION = 0.2, 0.2


def glorot_init(model: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every convolution and linear layer, in place.

    These are the authors' (Keras) defaults; torch's default init shrinks activations through CNN-1/CNN-2's
    seven layers so much that training sits at chance for several epochs.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def flip_boxes(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each box of ``x`` ``(n, 1, d, h, w)`` along each spatial axis with probability 1/2 (drawn from
    ``generator``): a new tensor.

    A flip of real space flips Fourier space along the same axis, and the missing wedge of a tilt series about y
    (``|k_z| <= |k_x| tan(theta)``, all ``k_y``) is unchanged by ``k -> -k`` on any axis, so a flipped box has the
    wedge of a real one. 90-degree turns about y would swap the wedge's ``z`` and ``x`` and are not used.
    """
    out = x.clone()
    for axis in (2, 3, 4):
        pick = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
        out[pick] = out[pick].flip(axis)
    return out


def check_settings(dataset: Dataset, *, epochs: int, batch_size: int, lr: float, init: str, normalisation: str,
                   time_limit: float | None, split_by: str) -> None:
    """Raise :class:`InputError` for settings that cannot train."""
    from tomocam.models import NORMALISATIONS

    if epochs < 1 or batch_size < 1 or not (lr > 0):
        raise InputError(f"epochs and batch size must be >= 1 and lr > 0, found {epochs}, {batch_size}, {lr}")
    if len(dataset.classes) < 2:
        raise InputError(f"dataset '{dataset.path}' has {len(dataset.classes)} class; training needs at least 2")
    if init not in INITS:
        raise InputError(f"unknown init {init!r}; expected one of {INITS}")
    if normalisation not in NORMALISATIONS:
        raise InputError(f"unknown normalisation {normalisation!r}; expected one of {NORMALISATIONS}")
    if time_limit is not None and not time_limit > 0:
        raise InputError(f"time limit must be > 0, found {time_limit}")
    if split_by not in SPLIT_BY:
        raise InputError(f"unknown split {split_by!r}; expected one of {SPLIT_BY}")


def build_network(architecture: str, dataset: Dataset, arch_kwargs: dict[str, Any] | None, init: str,
                  dev: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The untrained model for ``dataset``'s classes and box size, on ``dev``, and the arguments it was built with."""
    from tomocam.models import build_model

    kwargs = {"num_classes": len(dataset.classes), "input_size": dataset.box, **(arch_kwargs or {})}
    try:
        model = build_model(architecture, **kwargs).to(dev)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"cannot build architecture {architecture!r} with {kwargs}: {err}") from None
    if init == "glorot":
        glorot_init(model)
    return model, kwargs


@dataclass
class Fitting:
    """What one training run works on: the model and its optimiser, every box ``x`` ``(n, 1, s, s, s)`` with its
    labels ``y`` ``(n,)``, the split, the batch order's generator and whether boxes are flipped."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    split: Split
    device: torch.device
    generator: torch.Generator
    batch_size: int
    flips: bool
    loss_fn: nn.Module = field(default_factory=nn.CrossEntropyLoss)


def fit_epoch(f: Fitting, epoch: int, progress: Progress | None) -> tuple[float, float]:
    """One pass over the fitting boxes in a seeded random order; returns (mean loss, accuracy)."""
    fit = torch.from_numpy(f.split.fit).to(f.x.device)
    x_fit, y_fit = f.x[fit], f.y[fit]
    steps = math.ceil(len(x_fit) / f.batch_size)
    report_every = max(1, steps // 50)
    f.model.train()
    order = torch.randperm(len(x_fit), generator=f.generator).to(f.x.device)
    # running sums stay on the device: reading them back waits for the GPU, so that happens only when reported
    total_loss = torch.zeros((), device=f.device)
    correct, seen = torch.zeros((), device=f.device, dtype=torch.long), 0
    for step in range(steps):
        idx = order[step * f.batch_size:(step + 1) * f.batch_size]
        xb, yb = x_fit[idx].to(f.device, non_blocking=True), y_fit[idx].to(f.device, non_blocking=True)
        if f.flips:
            xb = flip_boxes(xb, f.generator)
        f.optimizer.zero_grad(set_to_none=True)
        logits = f.model(xb)
        loss = f.loss_fn(logits, yb)
        loss.backward()
        f.optimizer.step()
        total_loss += loss.detach() * len(idx)
        correct += (logits.argmax(1) == yb).sum()
        seen += len(idx)
        if progress is not None and ((step + 1) % report_every == 0 or step + 1 == steps):
            progress("batch", {"epoch": epoch, "step": step + 1, "steps": steps,
                               "loss": float(total_loss) / seen, "accuracy": int(correct) / seen})
    return float(total_loss) / seen, int(correct) / seen


def score(f: Fitting, indices: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) of the model on the boxes ``indices``; NaN for none."""
    if len(indices) == 0:
        return math.nan, math.nan
    idx = torch.from_numpy(indices).to(f.x.device)
    logits, labels = predict(f.model, f.x[idx], f.device), f.y[idx].cpu()
    return float(f.loss_fn(logits, labels)), float((logits.argmax(1) == labels).float().mean())


def fit_best(f: Fitting, epochs: int, time_limit: float | None,
             progress: Progress | None) -> tuple[list[dict[str, float]], int, float]:
    """Train up to ``epochs`` (or until ``time_limit`` seconds run out), keep the weights of the epoch with the
    best validation accuracy (ties: lower loss) in the model; returns (history, best epoch, best accuracy)."""
    history: list[dict[str, float]] = []
    best: tuple[float, float] = (-1.0, math.inf)
    best_state, best_epoch = copy.deepcopy(f.model.state_dict()), 0
    t0 = time.time()
    for epoch in range(1, epochs + 1):
        train_loss, train_acc = fit_epoch(f, epoch, progress)
        val_loss, val_acc = score(f, f.split.val)
        record = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
                  "val_loss": val_loss, "val_accuracy": val_acc}
        history.append(record)
        if (val_acc, -val_loss) > (best[0], -best[1]):
            best, best_state, best_epoch = (val_acc, val_loss), copy.deepcopy(f.model.state_dict()), epoch
        if progress is not None:
            progress("epoch", record)
        if time_limit is not None and time.time() - t0 >= time_limit:
            break
    f.model.load_state_dict(best_state)
    return history, best_epoch, best[0]


def dataset_record(dataset: Dataset) -> dict[str, Any]:
    """What a checkpoint keeps of its dataset: how it was made, and for an extracted one its tomograms and tables."""
    keys = ("seed", "n_per_class", "acquisition", "sampling", "box", "extract", "tomograms", "tables")
    return {k: dataset.attrs[k] for k in keys if k in dataset.attrs}


def training_record(dataset: Dataset, f: Fitting, *, command: str, settings: dict[str, Any],
                    history: list[dict[str, float]], best_epoch: int, val_accuracy: float, test_accuracy: float,
                    seconds: float) -> dict[str, Any]:
    """The checkpoint's provenance: the command, the dataset (its tomograms and tables when extracted), the split,
    the settings, the history and accuracies, the versions, and the inputs' statistics; plain types only, as
    checkpoints load with ``weights_only=True``."""
    fit = torch.from_numpy(f.split.fit[:4096]).to(f.x.device)
    record = {
        "command": command, "dataset": str(dataset.path), "dataset_attrs": dataset_record(dataset),
        "labels_sha256": labels_digest(dataset.labels), "split": f.split.record(settings["seed"], TEST_FRACTION,
                                                                                 VAL_FRACTION),
        **settings, "epochs_run": len(history), "best_epoch": best_epoch, "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy, "history": history, "device": str(f.device), "train_seconds": round(seconds, 1),
        "torch": str(torch.__version__), "python": platform.python_version(),
        # what the model's inputs looked like, for explain's out-of-distribution warning (tomocam.models.input_stats)
        "input_stats": summarise_inputs(f.x[fit].float().cpu().numpy()),
    }
    return json.loads(json.dumps(record))


def train_model(
    dataset: Dataset,
    architecture: str = "cnn2",
    *,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "auto",
    arch_kwargs: dict[str, Any] | None = None,
    init: str = "glorot",
    normalisation: str = "zscore",
    time_limit: float | None = None,
    split_by: str = "box",
    test_tomograms: list[str] | None = None,
    flips: bool = False,
    out: Path | None = None,
    command: str = "",
    progress: Progress | None = None,
) -> TrainResult:
    """Train ``architecture`` on ``dataset`` and (when ``out`` is given) write the best-validation checkpoint.

    ``progress(event, values)`` is called with ``"batch"`` (loss, accuracy so far, step, steps; about 50 times
    an epoch) and ``"epoch"`` (epoch, train/val loss and accuracy). The boxes are held in memory, normalised:
    ``n * s^3 * 4`` bytes (2300 boxes of 40^3 take 0.6 GB); on CUDA they are moved to the GPU once when they take
    less than half its free memory, so batches never cross the bus. ``init`` "glorot" re-initialises conv/linear
    layers (:func:`glorot_init`), "none" keeps the factory's initialisation. ``normalisation`` is applied to every
    box and recorded in the checkpoint. ``time_limit`` (seconds of training, from the first epoch) ends training
    after the epoch in which it runs out; ``epochs`` stays the upper bound. ``split_by`` "box" or "tomogram"
    (``test_tomograms``: the tomograms to hold out, default drawn from the seed); ``flips`` augments the fitting
    batches with :func:`flip_boxes`. Seeded: same seed, data and device give the same model (a time limit can
    only stop it earlier).
    """
    check_settings(dataset, epochs=epochs, batch_size=batch_size, lr=lr, init=init, normalisation=normalisation,
                   time_limit=time_limit, split_by=split_by)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    split = make_split(dataset, seed, by=split_by, test_tomograms=test_tomograms, test_fraction=TEST_FRACTION,
                       val_fraction=VAL_FRACTION)
    if len(split.fit) == 0 or len(split.val) == 0:
        raise InputError(f"dataset '{dataset.path}' is too small to split ({len(dataset)} boxes)")
    model, kwargs = build_network(architecture, dataset, arch_kwargs, init, dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest 3-D convolutions
    x = _to_storage(load_inputs(dataset, normalisation=normalisation), dev)
    f = Fitting(model, torch.optim.Adam(model.parameters(), lr=lr), x, torch.from_numpy(dataset.labels).to(x.device),
                split, dev, torch.Generator().manual_seed(seed), batch_size, flips)
    t0 = time.time()
    history, best_epoch, val_acc = fit_best(f, epochs, time_limit, progress)
    test_acc = score(f, split.test)[1]
    settings = {"seed": seed, "epochs": epochs, "time_limit_s": time_limit, "batch_size": batch_size, "lr": lr,
                "normalisation": normalisation, "optimizer": "Adam", "init": init, "arch_kwargs": kwargs,
                "augment": "flips" if flips else None}
    provenance = training_record(dataset, f, command=command, settings=settings, history=history,
                                 best_epoch=best_epoch, val_accuracy=val_acc, test_accuracy=test_acc,
                                 seconds=time.time() - t0)
    path = None
    if out is not None:
        from tomocam.models import save_checkpoint

        path = save_checkpoint(model.cpu(), out, classes=list(dataset.classes), input_size=dataset.box,
                               voxel_size=dataset.voxel_size, normalisation=normalisation,
                               polarity=str(dataset.attrs.get("polarity", "bright")), provenance=provenance)
    return TrainResult(model.eval(), history, best_epoch, val_acc, test_acc, path, provenance)
