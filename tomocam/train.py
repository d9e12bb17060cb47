"""Training a classifier on a simulated subtomogram dataset, as in the paper.

Split (paper, section 3): train/test 4:1, then the training part 80/20 into fit/validation. The split is stratified
by class and drawn from the seed, so :mod:`tomocam.evaluate.table1` can rebuild the test split from the checkpoint's
provenance. Adam on cross-entropy; the checkpoint keeps the weights of the epoch with the best validation accuracy
(ties: lower validation loss). Inputs are normalised with :func:`tomocam.models.normalise` ("zscore" per box, or
"raw" as the authors fed them), the same function tiles go through when explaining; the checkpoint records which.
A time limit stops training after the epoch in which it runs out (for a SLURM walltime or a fixed GPU budget).
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

import torch
from torch import nn

from tomocam.device import resolve_device
from tomocam.errors import CheckpointError, InputError
from tomocam.evaluate.splits import labels_digest, load_inputs, split_indices
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
    out: Path | None = None,
    command: str = "",
    progress: Progress | None = None,
) -> TrainResult:
    """Train ``architecture`` on ``dataset`` and (when ``out`` is given) write the best-validation checkpoint.

    ``progress(event, values)`` is called with ``"batch"`` (loss, accuracy so far, step, steps; about 50 times
    an epoch) and ``"epoch"``
    (epoch, train/val loss and accuracy). The boxes are held in memory, normalised: ``n * s^3 * 4`` bytes
    (2300 boxes of 40^3 take 0.6 GB); on CUDA they are moved to the GPU once when they take less than half its free
    memory, so batches never cross the bus. ``init`` "glorot" re-initialises conv/linear layers
    (:func:`glorot_init`), "none" keeps the factory's initialisation. ``normalisation`` is applied to every box and
    recorded in the checkpoint. ``time_limit`` (seconds of training, from the first epoch) ends training after the
    epoch in which it runs out, so a run overshoots it by at most one epoch; ``epochs`` stays the upper bound.
    Seeded: same seed, data and device give the same model (a time limit can only stop it earlier).
    """
    from tomocam.models import NORMALISATIONS, build_model, save_checkpoint

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
    dev = resolve_device(device)
    torch.manual_seed(seed)
    split = split_indices(dataset.labels, seed)
    if len(split.fit) == 0 or len(split.val) == 0:
        raise InputError(f"dataset '{dataset.path}' is too small to split ({len(dataset)} boxes)")
    kwargs = {"num_classes": len(dataset.classes), "input_size": dataset.box, **(arch_kwargs or {})}
    try:
        model = build_model(architecture, **kwargs).to(dev)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"cannot build architecture {architecture!r} with {kwargs}: {err}") from None
    if init == "glorot":
        glorot_init(model)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest 3-D convolutions
    x = _to_storage(load_inputs(dataset, normalisation=normalisation), dev)
    y = torch.from_numpy(dataset.labels).to(x.device)
    fit = torch.from_numpy(split.fit).to(x.device)
    x_fit, y_fit = x[fit], y[fit]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    best: tuple[float, float] = (-1.0, math.inf)
    best_state, best_epoch = copy.deepcopy(model.state_dict()), 0
    steps = math.ceil(len(x_fit) / batch_size)
    report_every = max(1, steps // 50)
    t0 = time.time()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x_fit), generator=gen).to(x.device)
        # running sums stay on the device: reading them back waits for the GPU, so that happens only when reported
        total_loss, correct, seen = torch.zeros((), device=dev), torch.zeros((), device=dev, dtype=torch.long), 0
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            xb, yb = x_fit[idx].to(dev, non_blocking=True), y_fit[idx].to(dev, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            opt.step()
            total_loss += loss.detach() * len(idx)
            correct += (logits.argmax(1) == yb).sum()
            seen += len(idx)
            if progress is not None and ((step + 1) % report_every == 0 or step + 1 == steps):
                progress("batch", {"epoch": epoch, "step": step + 1, "steps": steps,
                                   "loss": float(total_loss) / seen, "accuracy": int(correct) / seen})
        y_val = y[torch.from_numpy(split.val).to(x.device)].cpu()
        val_logits = predict(model, x[torch.from_numpy(split.val).to(x.device)], dev)
        val_loss = float(loss_fn(val_logits, y_val))
        val_acc = float((val_logits.argmax(1) == y_val).float().mean())
        record = {"epoch": epoch, "train_loss": float(total_loss) / seen, "train_accuracy": int(correct) / seen,
                  "val_loss": val_loss, "val_accuracy": val_acc}
        history.append(record)
        if (val_acc, -val_loss) > (best[0], -best[1]):
            best, best_state, best_epoch = (val_acc, val_loss), copy.deepcopy(model.state_dict()), epoch
        if progress is not None:
            progress("epoch", record)
        if time_limit is not None and time.time() - t0 >= time_limit:
            break
    model.load_state_dict(best_state)
    test = torch.from_numpy(split.test).to(x.device)
    test_logits = predict(model, x[test], dev) if len(split.test) else torch.zeros(0, len(dataset.classes))
    y_test = y[test].cpu()
    test_acc = float((test_logits.argmax(1) == y_test).float().mean()) if len(split.test) else float("nan")
    provenance = {
        "command": command,
        "dataset": str(dataset.path),
        "dataset_attrs": {k: dataset.attrs.get(k) for k in ("seed", "n_per_class", "acquisition", "sampling", "box")},
        "labels_sha256": labels_digest(dataset.labels),
        "split": {"seed": seed, "test_fraction": 0.2, "val_fraction": 0.2,
                  "n_fit": len(split.fit), "n_val": len(split.val), "n_test": len(split.test)},
        "seed": seed, "epochs": epochs, "epochs_run": len(history), "time_limit_s": time_limit,
        "best_epoch": best_epoch, "batch_size": batch_size, "lr": lr, "normalisation": normalisation,
        "optimizer": "Adam", "init": init, "arch_kwargs": kwargs, "val_accuracy": best[0], "test_accuracy": test_acc,
        "history": history, "device": str(dev), "train_seconds": round(time.time() - t0, 1),
        "torch": str(torch.__version__), "python": platform.python_version(),
        # what the model's inputs looked like, for explain's out-of-distribution warning (tomocam.models.input_stats)
        "input_stats": summarise_inputs(x_fit[:4096].float().cpu().numpy()),
    }
    provenance = json.loads(json.dumps(provenance))  # plain types only: checkpoints load with weights_only=True
    path = None
    if out is not None:
        path = save_checkpoint(model.cpu(), out, classes=list(dataset.classes), input_size=dataset.box,
                               voxel_size=dataset.voxel_size, normalisation=normalisation,
                               polarity=str(dataset.attrs.get("polarity", "bright")), provenance=provenance)
    return TrainResult(model.eval(), history, best_epoch, best[0], test_acc, path, provenance)
