"""``tomocam export STORE``: per-class heatmaps and the label image as MRC files for IMOD and ChimeraX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    store: Annotated[Path, typer.Argument(help="An explain store (.zarr) written by 'tomocam explain'.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for the MRC files. Default: beside the store.")
    ] = None,
    classes: Annotated[
        list[str] | None, typer.Option("--class", "-c", help="Class to export (repeat). Default: all classes.")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option("--method", "-m", help="respond or gradcam (repeat). Default: all in the store.")
    ] = None,
    level: Annotated[int, typer.Option(help="Stored pyramid level (0 = the native grid, each next 2x coarser).")] = 0,
    full_grid: Annotated[
        bool, typer.Option("--full-grid", help="Heatmaps on the tomogram's grid, computed from the per-tile maps.")
    ] = False,
    labels: Annotated[bool, typer.Option("--labels/--no-labels", help="Also export the label image (uint16).")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace existing MRC files.")] = False,
) -> None:
    """Export heatmaps and labels to MRC files for IMOD and ChimeraX.

    Writes <store>_<method>_<class>_<level>.mrc per class and <store>_labels_<level>.mrc (<level>: level0,
    level1, ... or full), with the level's voxel size and origin, block by block (bounded memory).
    """
    from tomocam.store import open_store
    from tomocam.write.export_mrc import FULL, export_store

    opened = open_store(store)
    out_dir = output if output is not None else Path(store).absolute().parent
    paths = export_store(
        opened, out_dir, methods=method, classes=classes, level=FULL if full_grid else level, labels=labels,
        overwrite=overwrite,
    )
    for path in paths:
        typer.echo(str(path))
