"""``tomocam info MODEL``: what a checkpoint holds, how it was trained, and which layers can be explained."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def info(
    model: Annotated[
        Path | None,
        typer.Argument(help="A tomocam checkpoint (.pt). Default: the bundled model.", show_default=False),
    ] = None,
    history: Annotated[
        bool, typer.Option("--history", help="Also print the per-epoch training history and the full provenance.")
    ] = False,
) -> None:
    """Show a model's classes, input, training summary and every layer with its output shape."""
    from rich.table import Table

    from tomocam.cli.console import results_console
    from tomocam.models import bundled_model_path, load_checkpoint
    from tomocam.models.summary import HISTORY_COLUMNS, history_rows, layer_shapes, training_summary

    path = model or bundled_model_path()
    net, meta = load_checkpoint(path)
    console = results_console()

    def row(label: str, text: str) -> None:
        console.print(f"{label:<14} {text}", markup=False, highlight=False)

    console.print(f"[bold]{path}[/bold]  sha256 {meta.sha256[:16]}")
    row("architecture", f"{meta.architecture} ({', '.join(f'{k}={v}' for k, v in meta.arch_kwargs.items())})")
    row("input", f"{meta.input_size}^3 voxels at {meta.voxel_size:g} A/voxel, normalisation {meta.normalisation}, "
                 f"{meta.polarity} particles")
    row(f"classes ({len(meta.classes)})", ", ".join(meta.classes))
    row("default layer", meta.cam_layer)
    for label, text in training_summary(meta.provenance):
        row(label, text)
    if history:
        epochs = Table(title="Training history (the checkpoint keeps the best validation epoch)")
        for column in HISTORY_COLUMNS:
            epochs.add_column(column.replace("_", " "), justify="right")
        for values in history_rows(meta.provenance):
            epochs.add_row(*values)
        console.print(epochs)
        for key, value in meta.provenance.items():
            if key != "history":
                row(f"  {key}", str(value))
    elif meta.provenance:
        command = " ".join(["tomocam info", *([str(model)] if model else []), "--history"])
        row("", f"(per-epoch history and full provenance: {command})")
    table = Table(title=f"Layers for a {meta.input_size}^3 input (use a name with --layer)")
    table.add_column("layer")
    table.add_column("type")
    table.add_column("output shape (c, z, y, x)")
    table.add_column("CAM")
    for layer in layer_shapes(net, (1, meta.input_size, meta.input_size, meta.input_size)):
        mark = "default" if layer.name == meta.cam_layer else ("yes" if layer.explainable else "")
        table.add_row(layer.name, layer.kind, "x".join(map(str, layer.shape)) if layer.shape else "-", mark)
    console.print(table)
