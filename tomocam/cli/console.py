"""Where the command line prints its results (tables and the lines around them): one console for every command.

On a terminal that is rich's own console, laid out for the terminal's width. Anywhere else (a pipe, a file, a
SLURM log) rich would lay tables out for 80 columns and cut cells to fit (``Respond-C…``, ``0.00…``); there the
console is as wide as the widest line, so every name and number is printed whole and no line is wrapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

#: Columns of the console when stdout is not a terminal: wider than any table or line tomocam prints, so none is
#: cut or wrapped (a table without ``expand`` takes only the width its cells need).
UNBOUNDED_WIDTH = 100_000


def results_console() -> Console:
    """The console for a command's results on stdout (see the module docstring)."""
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        return console
    return Console(width=UNBOUNDED_WIDTH, soft_wrap=True)
