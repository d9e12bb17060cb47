"""The dataset scheduler: the tomograms' runs (:class:`tomocam.pipeline.schedule.TomogramRun`) pipelined on one
client.

Tomogram ``i + 1``'s phase 1 is submitted as soon as tomogram ``i``'s phase 1 is done, so ``i``'s phase 2 (its
tasks go first on a busy worker) and its finalize (on a thread of the client, beside the loop) overlap ``i + 1``'s
network work, and the workers do not wait between tomograms. At most ``in_flight`` tomograms are started and not
finished at once, which bounds the memory: their plans, their open stores and finalize's reads of one tomogram
each, whatever the size of the dataset. One loop over the finished tasks routes each result to its tomogram's run;
each run writes only its own store, so what a store holds never depends on the overlap.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tomocam.errors import InputError, OutputError

#: Errors of one tomogram: recorded while the others go on.
TOMOGRAM_ERRORS = (InputError, OutputError)


@dataclass
class Job:
    """One tomogram in flight: its run, the keys of its unfinished tasks, and its phase for the display."""

    name: str
    run: Any  # TomogramRun
    keys: set[str] = field(default_factory=set)
    finishing: Future | None = None

    @property
    def phase(self) -> str:
        """Where the tomogram is: ``phase 1``, ``phase 2`` (its labels and last boxes) or ``finalize``."""
        if self.finishing is not None:
            return "finalize"
        return "phase 2" if self.run.phase1_complete else "phase 1"


class Pipeline:
    """Drives the runs of ``names`` on ``client`` (see the module docstring).

    ``start(name)`` returns tomogram ``name``'s :class:`TomogramRun`, not yet submitted (it may raise a tomogram
    error: that tomogram fails, the next one starts); ``on_done(name, summary)`` and ``on_failed(name, error)``
    are called once per tomogram, on the loop's thread; ``on_phase(text)`` gets the phases of the tomograms in
    flight whenever one changes.
    """

    def __init__(self, client, names: Sequence[str], *, in_flight: int, start: Callable[[str], Any],
                 on_done: Callable[[str, Any], None], on_failed: Callable[[str, BaseException], None],
                 on_phase: Callable[[str], None] = lambda text: None) -> None:
        self.client = client
        self.queue = deque(names)
        self.in_flight = max(1, in_flight)
        self.start, self.on_done, self.on_failed, self.on_phase = start, on_done, on_failed, on_phase
        self.jobs: list[Job] = []  # started and not reported, in start order (touched by the loop's thread only)
        self._owner: dict[str, Job] = {}  # task key -> its tomogram
        self._wake = threading.Event()
        self._finisher: ThreadPoolExecutor

    def _show(self) -> None:
        self.on_phase(", ".join(f"{j.name} {j.phase}" for j in self.jobs))

    def _may_start(self) -> bool:
        return bool(self.queue) and len(self.jobs) < self.in_flight and all(j.run.phase1_complete for j in self.jobs)

    def _start_next(self, pending) -> None:
        while self._may_start():
            name = self.queue.popleft()
            try:
                run = self.start(name)
            except TOMOGRAM_ERRORS as err:
                self._drop(name, err)
                continue
            job = Job(name, run)
            self.jobs.append(job)
            try:
                self._add(job, run.submit(), pending)
            except TOMOGRAM_ERRORS as err:  # e.g. a block's peak unreadable on a resume
                self._drop(name, err, job)
                continue
            self._show()
            if not job.keys:  # a resumed store with every task done before: finalize only
                self._finish(job)

    def _add(self, job: Job, futures: list, pending) -> None:
        for future in futures:
            self._owner[future.key] = job
            job.keys.add(future.key)
            pending.add(future)

    def _drop(self, name: str, err: BaseException, job: Job | None = None) -> None:
        """Tomogram ``name`` failed: cancel its tasks, forget it, report it."""
        if job is not None:
            job.run.cancel()
            for key in job.keys:
                self._owner.pop(key, None)
            self.jobs.remove(job)
        self.on_failed(name, err)
        self._show()

    def _finish(self, job: Job) -> None:
        """Every task of ``job`` is done: finalize it on the finalize thread while the loop goes on."""
        def finish() -> Any:
            try:
                return job.run.finish()
            finally:
                self._wake.set()

        job.finishing = self._finisher.submit(finish)
        self._show()

    def _collect(self) -> None:
        """Report the tomograms whose finalize has ended, and let the next ones start."""
        for job in [j for j in self.jobs if j.finishing is not None and j.finishing.done()]:
            self.jobs.remove(job)
            err = job.finishing.exception()  # type: ignore[union-attr]
            if err is None:
                self.on_done(job.name, job.finishing.result())  # type: ignore[union-attr]
            elif isinstance(err, TOMOGRAM_ERRORS):
                self.on_failed(job.name, err)
            else:
                raise err
            self._show()

    def run(self) -> None:
        """Run every tomogram; returns when each is done or failed. ``KeyboardInterrupt`` (or any other error of
        the loop) cancels every task in flight and is raised on, once a finalize running then has ended."""
        from distributed import as_completed

        pending = as_completed([])
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tomocam-finalize") as self._finisher:
            try:
                self._loop(pending)
            except BaseException:
                for job in self.jobs:
                    job.run.cancel()
                raise

    def _loop(self, pending) -> None:
        from concurrent.futures import CancelledError

        self._start_next(pending)
        while self.jobs:
            if not pending.has_ready() and any(j.finishing is not None for j in self.jobs):
                # a finalize runs on its thread: wake for it as well as for the workers' results
                self._wake.wait(0.01)
                self._wake.clear()
                self._collect()
                self._start_next(pending)
                continue
            future = next(pending)
            job = self._owner.pop(future.key, None)
            if job is None:  # a task of a tomogram that failed, cancelled
                continue
            job.keys.discard(future.key)
            try:
                result = future.result()
            except CancelledError:
                continue
            except TOMOGRAM_ERRORS as err:
                self._drop(job.name, err, job)
            else:
                was = job.phase
                self._add(job, job.run.on_result(result), pending)
                if job.phase != was:
                    self._show()
                if not job.keys:
                    self._finish(job)
            self._collect()
            self._start_next(pending)
