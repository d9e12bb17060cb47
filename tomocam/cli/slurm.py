"""``tomocam slurm ...``: the resolved SLURM site settings, and what the batch scripts and ``--cluster slurm`` build
from them (:mod:`tomocam.deploy.slurm`)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tomocam.deploy.slurm import JOB_KINDS

app = typer.Typer(
    help="SLURM settings: print them, the sbatch options of scripts/slurm/*.sbatch, or the worker job script.",
    no_args_is_help=True,
)

Config = Annotated[
    Path | None,
    typer.Option("--config", help="Site settings file. Default: $TOMOCAM_SLURM_CONFIG, else the packaged defaults."),
]


#: The batch scripts, as choices of the command line.
Kind = Enum("Kind", [(kind, kind) for kind in JOB_KINDS], type=str)  # type: ignore[misc]


def _load(config: Path | None) -> dict:
    from tomocam.deploy.slurm import load_slurm_config

    return load_slurm_config(config)


@app.command("settings")
def settings(
    config: Config = None,
    defaults: Annotated[
        bool, typer.Option("--defaults", help="Print the packaged defaults with their comments (a file to edit).")
    ] = False,
) -> None:
    """Print the settings in effect (defaults < site file < TOMOCAM_<KEY> variables) as YAML."""
    import yaml

    from tomocam.deploy.slurm import default_settings_text

    if defaults:
        typer.echo(default_settings_text(), nl=False)
        return
    typer.echo(yaml.safe_dump(_load(config), sort_keys=False), nl=False)


@app.command("env")
def env(config: Config = None) -> None:
    """Print 'export TOMOCAM_<KEY>=value' lines for every setting (the batch scripts evaluate them)."""
    from tomocam.deploy.slurm import shell_assignments

    typer.echo(shell_assignments(_load(config)))


@app.command("sbatch-options")
def sbatch_options(
    kind: Annotated[Kind, typer.Argument(help="The batch script: explain, explain-array, explain-multinode, train.")],
    config: Config = None,
    array_size: Annotated[int | None, typer.Option(help="Number of array tasks (explain-array).")] = None,
) -> None:
    """Print the sbatch options a scripts/slurm/KIND.sbatch job is submitted with, one per line."""
    from tomocam.deploy.slurm import sbatch_options as options

    typer.echo("\n".join(options(_load(config), kind.value, array_size)))


@app.command("job-script")
def job_script(config: Config = None) -> None:
    """Print the worker job script that 'tomocam explain --cluster slurm' submits (nothing is submitted)."""
    from tomocam.deploy.slurm import slurm_cluster

    with slurm_cluster(_load(config)) as cluster:
        typer.echo(cluster.job_script())
