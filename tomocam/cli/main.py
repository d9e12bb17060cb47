"""The ``tomocam`` command: a thin Typer shell over the library.

Each command lives in its own module of :mod:`tomocam.cli` and is registered here. Commands import heavy
libraries inside their bodies so that ``tomocam --help`` stays fast. Errors derived from
:class:`tomocam.errors.TomocamError` become one red line and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from tomocam import __version__
from tomocam.cli import demo, evaluate, explain, export, info, picks, render, simulate, train
from tomocam.errors import OutputError, TomocamError

app = typer.Typer(
    name="tomocam",
    help="Respond-CAM and Grad-CAM heatmaps for every class of a 3-D CNN, over whole cryo-ET tomograms.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("info")(info.info)
app.command("explain")(explain.explain)
app.command("demo")(demo.demo)
app.add_typer(simulate.app, name="simulate")
app.command("train")(train.train)
app.add_typer(evaluate.app, name="evaluate")
app.command("render")(render.render)
app.command("export")(export.export)
app.command("picks")(picks.picks)

_DEBUG = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tomocam {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """tomocam: explain what 3-D CNNs see in whole cryo-electron tomograms."""
    global _DEBUG
    _DEBUG = debug


def main() -> None:
    """Entry point of the console script: run the app, turning tomocam errors into one line."""
    try:
        app(standalone_mode=False)
    except TomocamError as err:
        if _DEBUG:
            raise
        typer.secho(f"Error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(err.exit_code)
    except OSError as err:  # a full disk, a vanished or unreadable file: what the OS said, in one line
        if _DEBUG:
            raise
        where = f": {err.filename}" if err.filename else ""
        typer.secho(f"Error: {err.strerror or err}{where}", fg=typer.colors.RED, err=True)
        sys.exit(OutputError.exit_code)
    except KeyboardInterrupt:
        typer.secho("Interrupted.", fg=typer.colors.RED, err=True)
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        typer.secho("Aborted.", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except Exception as err:  # click usage errors and the like
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise
