"""Progress bars of long jobs (explain, simulate, train): one look, on stderr, so stdout keeps only results.

``rich`` is imported when a bar is made, not when this module is, so the command line starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


def progress_bars(*fields: str, enabled: bool = True) -> Progress:
    """A rich progress display: description, bar, done/total, each ``fields`` template, elapsed and remaining time.

    Args:
        fields: extra text columns, as rich templates of a task's fields (``"{task.fields[loss]}"``).
        enabled: ``False`` draws nothing (the display still counts).

    Use it as a context manager; each ``add_task`` is one bar, its total ``None`` until known.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *(TextColumn(f) for f in fields),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )
    return Progress(*columns, console=Console(stderr=True), disable=not enabled)
