"""`tomocam extract`: a training dataset cut from tomograms at the particles of annotation tables."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer


def extract(
    tomograms: Annotated[list[Path], typer.Argument(help="Tomograms to cut boxes from (MRC, OME-Zarr).")],
    particles: Annotated[list[Path], typer.Option(
        "--particles", "-p", help="Particle table (repeat): RELION/Warp STAR, copick picks, data-portal points or "
        "tomocam CSV. Each row names its tomogram by the file's name without suffix; a table naming none belongs to "
        "the only tomogram, or to the one whose name starts the table's file name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset to write (a zarr folder).")],
    box: Annotated[int, typer.Option("--box", help="Box edge in voxels at --voxel-size: the model's input size.")] = 40,
    voxel_size: Annotated[float | None, typer.Option(
        "--voxel-size", help="Voxel size of the boxes, angstrom (default: the tomograms'). Tiles of the tomogram "
        "are resampled to it as explain resamples them.")] = None,
    tomogram_voxel_size: Annotated[float | None, typer.Option(
        "--tomogram-voxel-size", help="Override the tomograms' header voxel size, angstrom.")] = None,
    per_particle: Annotated[int, typer.Option("--per-particle", "-k", help="Boxes per particle.")] = 1,
    max_shift: Annotated[float, typer.Option(
        "--max-shift", help="Largest random shift of a box from its particle, voxels (of --voxel-size) per axis; "
        "half explain's stride puts every particle where some tile sees it.")] = 0.0,
    background: Annotated[str, typer.Option(
        "--background", help="'background' boxes per tomogram: a count (200) or a ratio to its particle boxes "
        "(1x). Their centres lie farther than --radius from every annotated particle.")] = "0",
    radius: Annotated[float | None, typer.Option(
        "--radius", help="Particle radius, angstrom: how far background boxes keep from particles.")] = None,
    classes: Annotated[str | None, typer.Option(
        "--classes", help="Classes to keep, merge or drop: 'ribosome,80S=ribosome,membrane=-'. A row of a class "
        "not named is an error. Default: every class as the tables name it.")] = None,
    invert: Annotated[bool, typer.Option("--invert", help="Negate the contrast (dark particles become bright); "
                                         "explain then needs --invert too.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the shifts and background positions.")] = 0,
    workers: Annotated[int | None, typer.Option("--workers", "-j",
                                                help="Processes, one tomogram each (default: all cores).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing dataset (an unfinished one of the same inputs is finished "
        "without it).")] = False,
) -> None:
    """Cut boxes at annotated particles (and background boxes) from tomograms into a dataset for 'tomocam train'.

    Boxes are explain's tiles at the particles: the same size, resampling and contrast. A box that would cross a
    face of its tomogram is skipped (explain never pads), and counted in the dataset's record.
    """
    from tomocam.extract import ExtractSettings, parse_classes, plan_extraction, write_extraction
    from tomocam.progress import progress_bars

    settings = ExtractSettings(box=box, voxel_size=voxel_size, per_particle=per_particle, max_shift=max_shift,
                               background=background, radius=radius, classes=parse_classes(classes), invert=invert,
                               seed=seed)
    command = shlex.join(["tomocam", *sys.argv[1:]])
    extraction = plan_extraction(tomograms, particles, settings, tomogram_voxel_size=tomogram_voxel_size)
    with progress_bars() as bar:
        task = bar.add_task("extracting", total=extraction.n_boxes)
        write_extraction(extraction, out, workers=workers, command=command, overwrite=overwrite,
                         progress=lambda done, total: bar.update(task, completed=done, total=total))
    for p in extraction.plans:
        skipped = f", {p.skipped} skipped at faces" if p.skipped else ""
        typer.echo(f"{p.name}: {len(p)} boxes (tile {'x'.join(map(str, p.spec.tile))} voxels){skipped}")
    typer.echo(f"wrote {extraction.n_boxes} boxes to {out}")
