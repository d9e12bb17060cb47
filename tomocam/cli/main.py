"""The ``tomocam`` command: a thin Typer shell over the library.

Each command lives in its own module of :mod:`tomocam.cli` and is registered here. Commands import heavy
libraries inside their bodies so that ``tomocam --help`` stays fast. Errors derived from
:class:`tomocam.errors.TomocamError` become one red line and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
import warnings
from typing import Annotated, NoReturn

import typer

from tomocam import __version__
from tomocam.cli import demo, evaluate, explain, export, extract, info, picks, render, simulate, slurm, train
from tomocam.errors import Interrupted, TomocamError, os_fault, warning_line

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
app.command("extract")(extract.extract)
app.command("train")(train.train)
app.add_typer(evaluate.app, name="evaluate")
app.command("render")(render.render)
app.command("export")(export.export)
app.command("picks")(picks.picks)
app.add_typer(slurm.app, name="slurm")

_DEBUG = False
USAGE = 2  # a bad command line, as click and POSIX tools use it
INTERRUPTED = Interrupted.exit_code


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tomocam {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """tomocam: explain what 3-D CNNs see in whole cryo-electron tomograms."""
    global _DEBUG
    _DEBUG = debug


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str, code: int, prefix: str = "Error") -> NoReturn:
    typer.secho(f"{prefix}: {_one_line(message)}", fg=typer.colors.RED, err=True)
    sys.exit(code)


def _is_usage_error(err: BaseException) -> bool:
    """A click usage error, from whichever click Typer uses (``click`` up to Typer 0.2x, its bundled
    ``typer._click`` since): recognised by what it does, not by the module that defines it."""
    return callable(getattr(err, "format_message", None)) and isinstance(getattr(err, "exit_code", None), int)


def _is_abort(err: BaseException) -> bool:
    """Click's ``Abort``: raised for Ctrl-C or end of input (older click, and Typer for end of input)."""
    return any(cls.__name__ == "Abort" for cls in type(err).__mro__)


def _usage_message(err: BaseException) -> str:
    ctx = getattr(err, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"{err.format_message()}{where}"  # type: ignore[attr-defined]


def main() -> None:
    """Entry point of the console script.

    Exit codes: 0 success; 2 usage or input error; 3 output or OS error (exists already, not writable, disk
    full, I/O error, locked by another run; :func:`tomocam.errors.os_fault` finds the OS error also inside
    another exception); 4 the cluster's workers were lost; 130 interrupted. Every error is one red line on
    stderr; ``--debug`` shows the traceback instead. Library warnings are one line each (no source line).
    Typer run with ``standalone_mode=False`` returns the exit code of ``--help``/``--version``/``typer.Exit``
    and turns Ctrl-C outside a command's own handling into exit code 130.
    """
    warnings.formatwarning = warning_line
    try:
        code = app(prog_name="tomocam", standalone_mode=False)
    except TomocamError as err:
        if _DEBUG:
            raise
        _fail(str(err), err.exit_code, "Interrupted" if isinstance(err, Interrupted) else "Error")
    except KeyboardInterrupt:
        code = INTERRUPTED
    except Exception as err:
        if _is_usage_error(err):
            _fail(_usage_message(err), USAGE)
        if _is_abort(err):
            code = INTERRUPTED
        else:
            fault = os_fault(err)  # a full disk, an I/O error, a vanished file: also inside zarrs' or a worker's error
            if fault is None or _DEBUG:
                raise
            _fail(str(fault), fault.exit_code)
    if code == INTERRUPTED:
        typer.secho("Interrupted.", fg=typer.colors.RED, err=True)
    sys.exit(code if isinstance(code, int) else 0)
