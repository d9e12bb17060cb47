"""``tomocam export STORE``: per-class heatmaps and the label image as MRC files for IMOD and ChimeraX, or, with
``--copick``, picks, labels and heatmaps into a copick project."""

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
        list[str] | None, typer.Option("--class", "--classes", "-c", help="Class to export (repeat). Default: all "
                                          "classes. With --copick: the classes of the feature map (none: no map).")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option("--method", "-m", help="respond or gradcam (repeat). Default: all in the "
                                          "store. With --copick: one method, default respond.")
    ] = None,
    level: Annotated[int, typer.Option(help="Stored pyramid level (0 = the native grid, each next 2x coarser).")] = 0,
    full_grid: Annotated[
        bool, typer.Option("--full-grid", help="Heatmaps on the tomogram's grid, computed from the per-tile maps "
                           "(always so with --copick).")
    ] = False,
    labels: Annotated[bool, typer.Option("--labels/--no-labels", help="Also export the label image (uint16; with "
                                         "--copick a multilabel segmentation).")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
    copick: Annotated[
        Path | None, typer.Option("--copick", help="Write into this copick project (its copick_config.json; "
                                  "filesystem projects) instead of MRC files.", rich_help_panel="copick")
    ] = None,
    run: Annotated[
        str | None, typer.Option(help="The copick run the store explains.", rich_help_panel="copick")
    ] = None,
    session: Annotated[
        str, typer.Option(help="copick session id of what is written (user id: tomocam); no underscores.",
                          rich_help_panel="copick")
    ] = "0",
    tomo_type: Annotated[
        str | None, typer.Option(help="The copick tomogram the feature map goes beside. Default: the one the "
                                 "store explains, or the only one at its voxel spacing.", rich_help_panel="copick")
    ] = None,
    voxel_spacing: Annotated[
        float | None, typer.Option(help="copick voxel spacing (angstrom). Default: the store's voxel size.",
                                   rich_help_panel="copick")
    ] = None,
    picks: Annotated[
        bool, typer.Option("--picks/--no-picks", help="Write picks of every particle class (as 'tomocam picks').",
                           rich_help_panel="copick")
    ] = True,
    radius: Annotated[
        float | None, typer.Option("--radius", "-r", help="Particle radius for picking, angstrom. Default: each "
                                   "copick object's radius.", rich_help_panel="copick")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", "-t", help="Minimum heatmap value of a pick. Default: chosen per "
                                   "class from the data, as 'tomocam picks'.", rich_help_panel="copick")
    ] = None,
    add_objects: Annotated[
        bool, typer.Option("--add-objects", help="Add a pickable object to the copick config for each class that "
                           "has none (else such a class is refused).", rich_help_panel="copick")
    ] = False,
    float16: Annotated[
        bool, typer.Option("--float16/--float32", help="Feature map values as float16 (relative error <= 4.9e-4).",
                           rich_help_panel="copick")
    ] = False,
) -> None:
    """Export heatmaps and labels to MRC files for IMOD and ChimeraX, or into a copick project.

    MRC: writes <store>_<method>_<class>_<level>.mrc per class and <store>_labels_<level>.mrc (<level>: level0,
    level1, ... or full), with the level's voxel size and origin, block by block (bounded memory).

    copick (--copick CONFIG --run NAME): under user 'tomocam' and --session, writes the picks of each class as
    Picks/tomocam_<session>_<object>.json, the label image as the multilabel segmentation
    Segmentations/<vs>_tomocam_<session>_labels-multilabel.zarr with the config's object labels, and the heatmaps of
    the --class classes as the feature map <tomo type>_tomocam-<session>-<method>_features.zarr beside the tomogram
    (OME-NGFF 0.4, zarr v2). Each class must match a pickable object by name (underscores read as '-'); nothing
    appears under its final name until everything is written.
    """
    from tomocam.errors import InputError
    from tomocam.store import open_store

    opened = open_store(store)
    if copick is None:
        copick_only = [name for name, given in (
            ("--run", run is not None), ("--session", session != "0"), ("--tomo-type", tomo_type is not None),
            ("--voxel-spacing", voxel_spacing is not None), ("--no-picks", not picks), ("--radius", radius is not None),
            ("--threshold", threshold is not None), ("--add-objects", add_objects), ("--float16", float16),
        ) if given]
        if copick_only:
            raise InputError(f"{copick_only[0]} is an option of the copick export: add --copick CONFIG")
        from tomocam.write.export_mrc import FULL, export_store

        out_dir = output if output is not None else Path(store).absolute().parent
        paths = export_store(
            opened, out_dir, methods=method, classes=classes, level=FULL if full_grid else level, labels=labels,
            overwrite=overwrite,
        )
        for path in paths:
            typer.echo(str(path))
        return

    from tomocam.write.copick import export_copick
    from tomocam.write.copick_project import open_project

    if run is None:
        raise InputError("--copick needs --run NAME: the copick run the store explains")
    if output is not None or level != 0:
        raise InputError("--output and --level are options of the MRC export; --copick writes into the project at "
                         "the tomogram's grid")
    if method is not None and len(method) > 1:
        raise InputError("--copick exports one method: give --method once")
    result = export_copick(
        opened, open_project(copick), run, session=session, tomo_type=tomo_type, voxel_size=voxel_spacing,
        method=method[0] if method else None, feature_classes=classes or (), picks=picks, labels=labels,
        radius=radius, threshold=threshold, add_objects=add_objects, float16=float16, overwrite=overwrite,
        progress=lambda line: typer.echo(line, err=True),
    )
    if result.added:
        typer.echo(f"added to {copick}: {', '.join(result.added)}", err=True)
    for path in result.paths:
        typer.echo(str(path))
