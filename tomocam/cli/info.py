"""``tomocam info MODEL``: what a checkpoint holds and which layers can be explained."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def info(
    model: Annotated[
        Optional[Path],
        typer.Argument(help="A tomocam checkpoint (.pt). Default: the bundled model.", show_default=False),
    ] = None,
) -> None:
    """Show a model's classes, input size, voxel size and every layer with its output shape."""
    from rich.console import Console
    from rich.table import Table

    from tomocam.models import bundled_model_path, load_checkpoint
    from tomocam.models.summary import layer_shapes

    path = model or bundled_model_path()
    net, meta = load_checkpoint(path)
    console = Console()
    console.print(f"[bold]{path}[/bold]  sha256 {meta.sha256[:16]}")
    console.print(f"architecture   {meta.architecture} {meta.arch_kwargs}")
    console.print(f"input          {meta.input_size}^3 voxels at {meta.voxel_size:g} A/voxel, "
                  f"normalisation {meta.normalisation}, {meta.polarity} particles")
    console.print(f"classes ({len(meta.classes)})  {', '.join(meta.classes)}")
    console.print(f"default layer  {meta.cam_layer}")
    for key, value in meta.provenance.items():
        console.print(f"provenance     {key}: {value}")
    table = Table(title=f"Layers for a {meta.input_size}^3 input (use a name with --layer)")
    table.add_column("layer")
    table.add_column("type")
    table.add_column("output shape (c, z, y, x)")
    table.add_column("CAM")
    for layer in layer_shapes(net, (1, meta.input_size, meta.input_size, meta.input_size)):
        mark = "default" if layer.name == meta.cam_layer else ("yes" if layer.explainable else "")
        table.add_row(layer.name, layer.kind, "x".join(map(str, layer.shape)) if layer.shape else "-", mark)
    console.print(table)
