"""Progress bars of long jobs (explain, simulate, train): one look, on stderr, so stdout keeps only results.

On a terminal they are live bars. Where stderr is not a terminal (a batch job's log file, a pipe), bars would show
only when the job ends, so instead every running task prints one line every ``TOMOCAM_PROGRESS_SECONDS`` seconds
(default 30): done/total, rate and time left, then the bars once at the end.

A bar is drawn from the moment its task has work done (an ``advance``, an ``update`` with ``completed``) or is
started with ``start_task``, not when it is added: a run that fails before a phase begins (a NaN tomogram stops
phase 1 at its first block) shows no bar for that phase, and a phase with nothing left to do (all resumed) none.

``rich`` is imported when a bar is made, not when this module is, so the command line starts fast; a disabled
display (:class:`Counts`) imports nothing: rich's import takes 0.25 s of the interpreter, which an explain run
without bars would otherwise spend beside its first phase-1 task (0.42 instead of 0.19 s, ceiling model).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from rich.progress import Progress, Task, TaskID

#: Environment variable: seconds between progress lines when stderr is not a terminal.
INTERVAL_ENV = "TOMOCAM_PROGRESS_SECONDS"


@dataclass
class CountedTask:
    """What :class:`Counts` keeps of a task (the names of rich's ``Task`` fields)."""

    description: str
    total: float | None
    completed: float = 0


class Counts:
    """The display when bars are disabled: it counts as rich's ``Progress`` does (``add_task``, ``advance``,
    ``update``, ``tasks``) and draws nothing."""

    def __init__(self) -> None:
        self.tasks: list[CountedTask] = []

    def __enter__(self) -> Counts:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> TaskID:
        """A new task; returns its id (its index in :attr:`tasks`)."""
        self.tasks.append(CountedTask(description, total))
        return len(self.tasks) - 1  # type: ignore[return-value]  # rich's TaskID is an int

    def advance(self, task: TaskID, advance: float = 1) -> None:
        """Count ``advance`` more done for ``task``."""
        self.tasks[task].completed += advance

    def update(self, task: TaskID, *, completed: float | None = None, total: float | None = None,
               **fields: Any) -> None:
        """Set ``task``'s count done and total (those given)."""
        if completed is not None:
            self.tasks[task].completed = completed
        if total is not None:
            self.tasks[task].total = total

    def start_task(self, task: TaskID) -> None:
        """Nothing to draw: as rich's ``start_task``, for the same calls on either display."""


@overload
def progress_bars(*fields: str, enabled: Literal[True] = True) -> Progress: ...


@overload
def progress_bars(*fields: str, enabled: bool) -> Progress | Counts: ...


def progress_bars(*fields: str, enabled: bool = True) -> Progress | Counts:
    """A rich progress display: description, bar, done/total, each ``fields`` template, elapsed and remaining time.

    Args:
        fields: extra text columns, as rich templates of a task's fields (``"{task.fields[loss]}"``).
        enabled: ``False`` draws nothing and imports no rich (:class:`Counts`, which still counts).

    Use it as a context manager; each ``add_task`` is one bar, its total ``None`` until known. Without a terminal,
    the display prints a line per running task every ``$TOMOCAM_PROGRESS_SECONDS`` seconds (default 30).
    """
    if not enabled:
        return Counts()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *(TextColumn(f) for f in fields),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )
    console = Console(stderr=True)
    if not console.is_terminal:
        return _with_lines(_shown_once_started(Progress))(
            *columns, console=console, interval=float(os.environ.get(INTERVAL_ENV, 30))
        )
    return _shown_once_started(Progress)(*columns, console=console)


def progress_line(task: Task) -> str:
    """One line for a log: ``description: done/total (percent), rate/s, ETA h:mm:ss`` (what is known so far)."""
    done = f"{task.completed:g}" + (f"/{task.total:g} ({task.percentage:.0f}%)" if task.total else "")
    rate = f", {task.speed:.3g}/s" if task.speed else ""
    left = task.time_remaining
    eta = f", ETA {int(left) // 3600}:{int(left) % 3600 // 60:02d}:{int(left) % 60:02d}" if left is not None else ""
    return f"{task.description}: {done}{rate}{eta}"


def _shown_once_started(base: type) -> type:
    """``base`` (rich's Progress) whose tasks are hidden until work is done on them or they are started."""

    class StartedProgress(base):
        def add_task(self, description: str, start: bool = True, total: float | None = 100.0, completed: float = 0,
                     visible: bool = True, **fields: Any) -> TaskID:
            task = super().add_task(description, start=False, total=total, completed=completed,
                                    visible=visible and completed > 0, **fields)
            if start:  # the clock runs from now, but the bar waits for work (rich's own start_task)
                super().start_task(task)
            return task

        def advance(self, task_id: TaskID, advance: float = 1) -> None:
            super().advance(task_id, advance)
            if advance:
                super().update(task_id, visible=True)

        def update(self, task_id: TaskID, *, completed: float | None = None, advance: float | None = None,
                   visible: bool | None = None, **kwargs: Any) -> None:
            if visible is None and (completed or advance):
                visible = True
            super().update(task_id, completed=completed, advance=advance, visible=visible, **kwargs)

        def start_task(self, task_id: TaskID) -> None:
            super().start_task(task_id)
            super().update(task_id, visible=True)

    return StartedProgress


def _with_lines(base: type) -> type:
    """``base`` (rich's Progress) that also prints :func:`progress_line` of every running task each ``interval`` s."""

    class LineProgress(base):
        def __init__(self, *columns, interval: float, **kwargs) -> None:
            super().__init__(*columns, **kwargs)
            self._interval = interval
            self._stopped = threading.Event()
            self._printer = threading.Thread(target=self._print_lines, daemon=True)

        def start(self) -> None:
            super().start()
            self._printer.start()

        def stop(self) -> None:
            self._stopped.set()
            if self._printer.is_alive():
                self._printer.join()
            super().stop()

        def _print_lines(self) -> None:
            while not self._stopped.wait(self._interval):
                with self._lock:
                    lines = [progress_line(t) for t in self.tasks if t.visible and t.started and not t.finished]
                for line in lines:
                    self.console.print(line, highlight=False, soft_wrap=True)

    return LineProgress
