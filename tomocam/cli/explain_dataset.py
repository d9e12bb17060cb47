"""``tomocam explain`` of a dataset: the stores of many tomograms in one output folder, their index, a summary.

Kept beside :mod:`tomocam.cli.explain`, which parses the options and hands a dataset over to
:func:`explain_dataset_command`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from tomocam.errors import ClusterError, InputError, Interrupted, OutputError, TomocamError, os_fault
from tomocam.pipeline.config import ExplainConfig


def explain_dataset_command(
    inputs: Sequence[str],
    config: ExplainConfig,
    *,
    exclude: Sequence[str],
    workers: int | None,
    scheduler_file: str | None,
    cluster: str,
    progress: bool,
    dry_run: bool,
    in_flight: int,
    level: int = 0,
    tomo_type: str | None = None,
    voxel_spacing: float | None = None,
) -> None:
    """Resolve ``inputs`` into a dataset and explain it into the folder ``config.output``; print a line per finished
    tomogram and a summary on stdout. Raises :class:`InputError` (exit 2) when a tomogram failed on its input,
    :class:`OutputError` (exit 3) when one failed only on its store, :class:`Interrupted` (exit 130) on Ctrl-C with
    the command that continues the dataset."""
    from rich.console import Console

    from tomocam.cli.report import disk_usage
    from tomocam.dataset import INDEX_NAME, explain_dataset, resolve_dataset

    console = Console(stderr=True)
    tomograms = resolve_dataset(inputs, exclude, level=level, tomo_type=tomo_type, voxel_spacing=voxel_spacing)
    folder = Path(config.output)
    if dry_run:
        _dry_run(tomograms, config)
        return

    drift_stats: dict[str, object] = {}

    def on_plan(name: str, plan) -> list[str]:
        from tomocam.models import load_checkpoint
        from tomocam.pipeline.drift import input_drift

        if "stats" not in drift_stats:  # the same model for every tomogram: read its training statistics once
            drift_stats["stats"] = load_checkpoint(plan.model_path)[1].provenance.get("input_stats")
        drift = input_drift(plan, drift_stats["stats"])  # type: ignore[arg-type]
        for warning in (*plan.warnings, *([drift] if drift else [])):
            console.print(f"[yellow]Warning:[/] {name}: {warning}", highlight=False)
        return [drift] if drift else []

    typer.echo(f"dataset: {len(tomograms)} tomograms -> {folder.absolute()}")
    try:
        summary = explain_dataset(tomograms, folder, config, workers=workers, scheduler_file=scheduler_file,
                                  cluster=cluster, progress=progress, on_plan=on_plan, log=typer.echo,
                                  store_size=disk_usage, in_flight=in_flight)
    except KeyboardInterrupt:
        raise Interrupted(_continue_message(folder, "is incomplete")) from None
    except ClusterError as err:  # the worker jobs are gone: what they finished is kept
        raise ClusterError(f"{err}; {_continue_message(folder, 'is incomplete')}") from None
    except Exception as err:  # a full disk or an I/O error mid-run: what failed, and how to continue once fixed
        fault = None if isinstance(err, TomocamError) else os_fault(err)
        if fault is None:
            raise
        raise OutputError(f"{fault}; {_continue_message(folder, 'is incomplete')}") from err
    n = len(summary.rows)
    typer.echo(f"  {'tomograms':<12} {len(summary.complete)} of {n} complete ({summary.reused} kept from an earlier "
               f"run), {len(summary.failed)} failed")
    rate = summary.tiles / summary.seconds if summary.seconds > 0 else 0.0
    typer.echo(f"  {'time':<12} {summary.seconds:.1f} s for {summary.tiles} tiles ({rate:.1f} tiles/s of wall time)")
    typer.echo(f"  {'index':<12} {Path(summary.folder) / INDEX_NAME}")
    for row in summary.failed:
        typer.echo(f"  {'failed':<12} {row.name} ({row.path}): {row.error}")
    if summary.failed:
        bad_input = any(isinstance(e, InputError) for e in summary.failures.values())
        message = (f"{len(summary.failed)} of {n} tomograms failed ({', '.join(r.name for r in summary.failed)}); "
                   f"their reasons are in {Path(summary.folder) / INDEX_NAME}")
        raise InputError(message) if bad_input else OutputError(message)


def _continue_message(folder: Path, state: str) -> str:
    """How a stopped dataset continues: what its index says is done, and the command (``--resume``)."""
    from tomocam.cli.explain import resume_command
    from tomocam.dataset import read_index

    rows = read_index(folder) if folder.is_dir() else []
    if not rows:
        return "stopped before the dataset's index was written; nothing to resume"
    done = sum(r.status == "complete" for r in rows)
    return (f"dataset '{folder.absolute()}' {state} ({done} of {len(rows)} tomograms complete, finished blocks "
            f"kept); continue with: {resume_command(sys.argv[1:])}")


def _dry_run(tomograms: list[str], config: ExplainConfig) -> None:
    """Print the dataset (names and stores) and the plan of its first tomogram; refuse as a real run would."""
    from tomocam.dataset import read_index, store_names, store_path
    from tomocam.pipeline import make_plan

    folder = Path(config.output)
    known = {r.path: r.name for r in read_index(folder)} if folder.is_dir() else {}
    names = store_names(tomograms, known)
    typer.echo(f"dataset {len(tomograms)} tomograms -> {folder.absolute()}")
    for path, name in names.items():
        typer.echo(f"  {name + '.zarr':<30} <- {path}")
    first = tomograms[0]
    cfg = dataclasses.replace(config, tomogram=first, output=store_path(folder, names[first]))
    typer.echo(make_plan(cfg, cfg.output).describe())
    if (folder / "zarr.json").is_file():
        raise OutputError(f"a real run would stop here: output '{folder}' is a zarr store, not a folder")
    existing = [n for n in names.values() if Path(store_path(folder, n)).exists()]
    if existing and not config.resume and not config.overwrite:
        raise OutputError(f"a real run would stop here: output folder '{folder}' holds stores of this dataset "
                          f"already ({', '.join(existing[:3])}); pass --resume or --overwrite")
    typer.echo(f"{'checks':<7} passed")
