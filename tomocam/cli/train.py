"""`tomocam train`: train CNN-1, CNN-2 or a registered architecture on a simulated or extracted dataset."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from tomocam.device import DEVICE_HELP


def train(
    dataset: Annotated[Path, typer.Argument(help="Dataset made by 'tomocam simulate subtomograms' or "
                                            "'tomocam extract'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (.pt).")],
    architecture: Annotated[str, typer.Option("--architecture", "-a",
                                              help="cnn1, cnn2 or a registered name.")] = "cnn2",
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 20,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 1e-3,
    fc_width: Annotated[int | None, typer.Option("--fc-width", help="Width of the FC layers (cnn1/cnn2).")] = None,
    dropout: Annotated[float | None, typer.Option("--dropout", help="Dropout of the FC layers (cnn1/cnn2).")] = None,
    init: Annotated[str, typer.Option("--init", help="'glorot' (the authors' Keras default) or 'none'.")] = "glorot",
    normalisation: Annotated[str, typer.Option(
        "--normalisation",
        help="Input per box: 'zscore' or 'raw' (as the authors); recorded in the checkpoint.")] = "zscore",
    time_limit: Annotated[float | None, typer.Option(
        "--time-limit", help="Minutes of training: stop after the epoch in which they run out.")] = None,
    split_by: Annotated[str, typer.Option(
        "--split-by", help="'box' (stratified by class) or 'tomogram': whole tomograms held out for test, so test "
        "accuracy is accuracy on tomograms the network never saw (datasets of 'tomocam extract').")] = "box",
    test_tomograms: Annotated[list[str] | None, typer.Option(
        "--test-tomograms", help="Tomograms to hold out for test (repeat, or comma-separated; implies --split-by "
        "tomogram). Default: a fifth of them, drawn from the seed.")] = None,
    flips: Annotated[bool, typer.Option(
        "--flips", help="Augment: flip each training box along random axes (flips keep the missing wedge).")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split, initialisation and batch order.")] = 0,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads for torch.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing checkpoint.")] = False,
) -> None:
    """Train a classifier (train/test 4:1, fit/validation 80/20) and save the best-validation checkpoint.

    The checkpoint records the dataset, its tomograms and tables (extracted datasets), the split and the history.
    """
    import torch

    from tomocam.errors import OutputError
    from tomocam.progress import progress_bars
    from tomocam.simulate import open_dataset
    from tomocam.train import train_model

    if out.exists() and not overwrite:
        raise OutputError(f"checkpoint '{out}' exists already: choose another path or pass --overwrite")
    if threads:
        torch.set_num_threads(threads)
    ds = open_dataset(dataset)
    kwargs = {k: v for k, v in (("fc_width", fc_width), ("dropout", dropout)) if v is not None}
    held = [n.strip() for item in test_tomograms or [] for n in item.split(",") if n.strip()]
    if held:
        split_by = "tomogram"
    command = shlex.join(["tomocam", *sys.argv[1:]])
    with progress_bars("{task.fields[info]}") as bar:
        tasks: list = []  # the bar's task, added with the first batch: a run refused before has no bar to print

        def report(event: str, v: dict) -> None:
            if event == "batch":
                if not tasks:
                    tasks.append(bar.add_task("epoch 1", total=None, info=""))
                bar.update(tasks[0], description=f"epoch {v['epoch']}/{epochs}", completed=v["step"], total=v["steps"],
                           info=f"loss {v['loss']:.3f} acc {v['accuracy']:.3f}")
            else:
                bar.console.print(
                    f"epoch {v['epoch']:3d}  train loss {v['train_loss']:.4f} acc {v['train_accuracy']:.3f}  "
                    f"val loss {v['val_loss']:.4f} acc {v['val_accuracy']:.3f}"
                )

        result = train_model(ds, architecture, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                             arch_kwargs=kwargs, init=init, normalisation=normalisation,
                             time_limit=None if time_limit is None else 60 * time_limit, split_by=split_by,
                             test_tomograms=held or None, flips=flips, out=out, command=command, progress=report)
    split = result.provenance["split"]
    if split["by"] == "tomogram":
        typer.echo(f"trained on tomograms {', '.join(split['train_tomograms'])}; "
                   f"test tomograms {', '.join(split['test_tomograms'])}")
    typer.echo(f"{len(result.history)} epochs; best epoch {result.best_epoch}: validation accuracy "
               f"{result.val_accuracy:.3f}, "
               f"test accuracy {result.test_accuracy:.3f}; wrote {result.checkpoint}")
