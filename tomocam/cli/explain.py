"""``tomocam explain TOMOGRAM...``: Respond-CAM (and Grad-CAM) heatmaps of every class over whole tomograms.

One tomogram path is today's run into one store (default ``<tomogram>.zarr``); several paths, a folder, a quoted
glob pattern or a list file make a dataset (:mod:`tomocam.dataset`): one store per tomogram in the output folder
and an index beside them, on one cluster.
"""

from __future__ import annotations

import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tomocam.device import DEVICE_HELP
from tomocam.errors import ClusterError, InputError, Interrupted, OutputError, TomocamError, os_fault
from tomocam.explain.methods import AUTOCAST_DTYPES, METHODS

Method = Enum("Method", {m: m for m in METHODS}, type=str)  # type: ignore[misc]
Autocast = Enum("Autocast", {a: a for a in AUTOCAST_DTYPES}, type=str)  # type: ignore[misc]


class Cluster(str, Enum):
    """Where the Dask workers come from: this machine, or SLURM worker jobs."""

    local = "local"
    slurm = "slurm"


def explain(
    tomograms: Annotated[
        list[str],
        typer.Argument(help="Tomogram to explain, read lazily: an MRC file, an OME-Zarr image (OME-NGFF 0.4 or 0.5), "
                            "or a copick project's copick_config.json (with --run, --tomo-type, --voxel-spacing); or "
                            "a dataset: several tomograms, a folder (its *.mrc and *.rec files), a quoted glob "
                            "pattern ('data/TS_*/*.mrc'), a list file (.txt, one path a line), or a copick project "
                            "without --run (every run).", metavar="TOMOGRAM"),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output OME-Zarr store. Default: <tomogram>.zarr (an OME-Zarr input: "
                                            "<image>_tomocam.zarr; a copick run: <run>_<tomo-type>.zarr here). For a "
                                            "dataset: the folder of its stores (<name>.zarr) and index "
                                            "(tomocam-dataset.csv)."),
    ] = None,
    level: Annotated[int, typer.Option(min=0, help="Pyramid level of an OME-Zarr tomogram (0: the finest).")] = 0,
    run: Annotated[str | None, typer.Option(help="copick run of the tomogram.")] = None,
    tomo_type: Annotated[str | None, typer.Option(help="copick tomogram type, e.g. wbp.")] = None,
    voxel_spacing: Annotated[
        float | None, typer.Option(help="copick voxel spacing of the tomogram, angstrom.")
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="File-name pattern left out of folders and glob patterns (repeat). Default: *_mask.mrc."),
    ] = None,
    in_flight: Annotated[
        int,
        typer.Option(min=1, help="A dataset's tomograms started and not finished at once: the next one's phase 1 "
                                 "starts when the previous one's is done, beside its stitching and finalize. "
                                 "Memory grows with it."),
    ] = 2,
    model: Annotated[
        Path | None, typer.Option(help="tomocam checkpoint (.pt). Default: the bundled model.")
    ] = None,
    layer: Annotated[
        str | None, typer.Option(help="Layer to explain, as 'tomocam info MODEL' lists it. Default: the model's.")
    ] = None,
    method: Annotated[
        list[Method] | None, typer.Option("--method", "-m", help="CAM method (repeat for both). Default: respond.")
    ] = None,
    classes: Annotated[
        list[str] | None, typer.Option("--classes", "-c", help="Class name or index to map (repeat). Default: all.")
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option(help="Tile edge in tomogram voxels. Default: the model's field of view (its input size, "
                          "rescaled by its voxel size over the tomogram's); tiles are resampled to the model's grid."),
    ] = None,
    stride: Annotated[int | None, typer.Option(help="Tile step in voxels. Default: half a tile.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Tiles per forward pass. Default: 32 on a CPU, 256 on a GPU.")
    ] = None,
    block: Annotated[int, typer.Option(help="Tiles per block edge: one phase-1 task (and resume unit).")] = 8,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    autocast: Annotated[
        Autocast | None, typer.Option(help="Mixed-precision forward pass on GPU (maps stay float32).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Local workers. Default: one per GPU, else one per 8 CPU cores.")
    ] = None,
    scheduler_file: Annotated[
        Path | None, typer.Option(help="Join a running Dask cluster through its scheduler file.")
    ] = None,
    cluster: Annotated[Cluster, typer.Option(help="local, or slurm to submit worker jobs.")] = Cluster.local,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run into the same store (a dataset: keep "
                                               "its complete stores, continue the others).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output store (a dataset: its stores).")] = False,
    voxel_size: Annotated[
        float | None, typer.Option(help="Voxel size in angstrom, overriding the MRC header.")
    ] = None,
    invert: Annotated[bool,
                      typer.Option(help="Invert contrast (for dark particles and a bright-trained model).")] = False,
    label_fraction: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Label a voxel where its best class exceeds this fraction of the "
                                              "largest per-voxel value of any tile map."),
    ] = 0.1,
    heatmap_step: Annotated[
        int | None,
        typer.Option(min=1, help="Voxels between stored heatmap samples (1 = the tomogram's grid). Default: the "
                                 "native step, gcd(stride, tile / feature size), e.g. 4 for CNN-2."),
    ] = None,
    float16: Annotated[
        bool, typer.Option("--float16/--float32", help="Store heatmaps as float16 (relative error <= 4.9e-4).")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the plan and exit without computing anything.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Explain whole tomograms: class-wise heatmaps of every class into one OME-Zarr store per tomogram.

    Tiles the tomogram, computes all-class CAMs of every tile on Dask workers and stitches them into one store
    (heatmaps in score units, per-tile scores, a label image, provenance). A dataset runs on one cluster whose
    workers stay warm; a tomogram that fails is recorded in the index with its reason while the others go on.
    Exit code 0 only when every tomogram succeeded, 2 when an input was bad, 130 when interrupted.
    """
    from rich.console import Console

    from tomocam.cli.report import print_summary, warn_if_collapsed
    from tomocam.dataset import DEFAULT_EXCLUDE, is_dataset
    from tomocam.models import bundled_model_path
    from tomocam.pipeline import ExplainConfig, explain_tomogram, make_plan
    from tomocam.read import locate_tomogram
    from tomocam.store.create import check_output

    console = Console(stderr=True)
    dataset = is_dataset(tomograms, run=run)
    if dataset and output is None:
        raise InputError("a dataset (several tomograms, a folder, a glob pattern, a list file or a copick project's "
                         "runs) needs an output folder: pass --output FOLDER")
    tomogram = Path(tomograms[0])
    source = str(tomogram)  # a dataset resolves its tomograms itself
    if not dataset:
        source = locate_tomogram(tomogram, level=level, run=run, tomo_type=tomo_type, voxel_spacing=voxel_spacing)
        output = output if output is not None else default_output(tomogram, run, tomo_type)
        src, out = Path(source).absolute(), output.absolute()
        if out == src or out in src.parents or src in out.parents:
            raise OutputError(f"output '{output}' would replace the tomogram '{source}'; choose another with --output")
    assert output is not None
    config = ExplainConfig(
        tomogram=source,
        output=str(output),
        model=str(model if model is not None else bundled_model_path()),
        layer=layer,
        methods=tuple(m.value for m in method) if method else ("respond",),
        classes=tuple(classes) if classes else None,
        tile=tile,
        stride=stride,
        batch_size=batch_size,
        block=block,
        device=device,
        autocast=autocast.value if autocast else None,
        invert=invert,
        voxel_size=voxel_size,
        label_fraction=label_fraction,
        heatmap_step=heatmap_step,
        heatmap_dtype="float16" if float16 else "float32",
        resume=resume,
        overwrite=overwrite,
        command=" ".join(["tomocam", *sys.argv[1:]]),
    )
    if dataset:
        from tomocam.cli.explain_dataset import explain_dataset_command

        explain_dataset_command(
            tomograms, config, exclude=tuple(exclude) if exclude is not None else DEFAULT_EXCLUDE, workers=workers,
            scheduler_file=str(scheduler_file) if scheduler_file else None, cluster=cluster.value, progress=progress,
            dry_run=dry_run, in_flight=in_flight, level=level, tomo_type=tomo_type, voxel_spacing=voxel_spacing,
        )
        return
    if dry_run:
        typer.echo(make_plan(config, str(Path(config.output).absolute())).describe())
        try:  # the check every real run makes first
            action = check_output(config.output, resume=resume, overwrite=overwrite)
        except OutputError as err:
            raise OutputError(f"a real run would stop here: {err}") from None
        what = {"resume": "--resume continues the existing store", "overwrite": "--overwrite replaces the existing "
                "output", "create": "the output folder is writable"}[action]
        typer.echo(f"{'checks':<7} passed: {what}")
        return

    def show_plan(plan) -> None:
        from tomocam.models import load_checkpoint
        from tomocam.pipeline.drift import input_drift

        drift = input_drift(plan, load_checkpoint(plan.model_path)[1].provenance.get("input_stats"))
        for warning in (*plan.warnings, *([drift] if drift else [])):
            console.print(f"[yellow]Warning:[/] {warning}", highlight=False)
        typer.echo(f"{plan.tile_grid.describe()}; {len(plan.blocks)} blocks; device {plan.device}")

    try:
        summary = explain_tomogram(
            config,
            workers=workers,
            scheduler_file=str(scheduler_file) if scheduler_file else None,
            cluster=cluster.value,
            progress=progress,
            on_plan=show_plan,
        )
    except KeyboardInterrupt:
        raise Interrupted(interrupted_message(Path(config.output), sys.argv[1:])) from None
    except ClusterError as err:  # the worker jobs are gone: what they finished is kept
        raise ClusterError(f"{err}; {interrupted_message(Path(config.output), sys.argv[1:])}") from None
    except Exception as err:  # a full disk or an I/O error mid-run: what failed, and how to continue once fixed
        fault = None if isinstance(err, TomocamError) else os_fault(err)
        if fault is None:
            raise
        failed = OutputError(f"{fault}; {interrupted_message(Path(config.output), sys.argv[1:])}")
        failed.errno = fault.errno
        raise failed from err
    print_summary(summary)
    warn_if_collapsed(summary)


def default_output(tomogram: Path, run: str | None, tomo_type: str | None) -> Path:
    """Where a run writes without --output: ``<tomogram>.zarr`` beside an MRC file, ``<image>_tomocam.zarr``
    beside an OME-Zarr image, ``<run>_<tomo type>.zarr`` in the working folder for a copick project."""
    if run is not None:
        return Path(f"{run}_{tomo_type}.zarr")
    if tomogram.is_dir():
        return tomogram.with_name(f"{tomogram.name.removesuffix('.zarr')}_tomocam.zarr")
    return tomogram.with_suffix(".zarr")


def resume_command(argv: list[str]) -> str:
    """The command line that continues an interrupted run: the same arguments, ``--resume`` instead of
    ``--overwrite`` (which would delete what is done)."""
    args = [a for a in argv if a not in ("--overwrite", "--no-overwrite", "--resume", "--no-resume")]
    return shlex.join(["tomocam", *args, "--resume"])


def interrupted_message(store: Path, argv: list[str]) -> str:
    """What an interrupted ``tomocam explain`` tells the user: is there a store to continue, and how."""
    if not (store / "zarr.json").is_file():
        return "stopped before the output store was created; nothing to resume"
    return f"store '{store}' is incomplete; finished blocks are kept, continue with: {resume_command(argv)}"
