"""Explain a whole dataset on one warm cluster: every tomogram into ``OUT/<name>.zarr``, an index beside them.

The cluster starts once and its workers stay warm: each worker loads the model once
(:func:`tomocam.pipeline.explain_tiles._model` keeps it per process) and every tomogram's tasks run on it. The
tomograms are pipelined (:mod:`tomocam.dataset.schedule`): the next one's phase 1 starts as soon as the previous
one's is done, with at most ``in_flight`` of them started and not finished. Each is prepared (header checks,
plan, probe, store creation) in a thread one tomogram ahead, off the path between two runs.

A tomogram that cannot be read or explained (:class:`~tomocam.errors.InputError`), or whose store cannot be
written (:class:`~tomocam.errors.OutputError`), is recorded in the index as ``failed`` with its one-line reason and
the others go on; an error of the settings every tomogram shares (model, layer, classes) or of the machine stops
the dataset. ``resume`` keeps complete stores as they are and continues partial ones from their finished blocks.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tomocam.dataset.index import DatasetIndex, IndexRow, read_index
from tomocam.dataset.names import store_names
from tomocam.dataset.schedule import Pipeline
from tomocam.errors import InputError, OutputError, TomocamError
from tomocam.progress import progress_bars

if TYPE_CHECKING:
    from tomocam.pipeline import ExplainConfig, Plan, RunSummary
    from tomocam.pipeline.schedule import TomogramRun
    from tomocam.store.lock import StoreLock
    from tomocam.store.writer import StoreWriter


@dataclass
class DatasetSummary:
    """What a dataset run did: the index rows of its tomograms, in dataset order, and its wall time."""

    folder: str
    rows: list[IndexRow]
    seconds: float
    failures: dict[str, TomocamError] = field(default_factory=dict)  # name -> the error, of this run's tomograms
    reused: int = 0  # tomograms whose complete store was kept (resume)
    tiles: int = 0  # tiles of the tomograms this run explained

    @property
    def complete(self) -> list[IndexRow]:
        """Rows of the tomograms whose store is complete."""
        return [r for r in self.rows if r.status == "complete"]

    @property
    def failed(self) -> list[IndexRow]:
        """Rows of the tomograms that failed, each with its reason."""
        return [r for r in self.rows if r.status == "failed"]


def store_path(folder: str | Path, name: str) -> str:
    """The store of tomogram ``name`` in output ``folder``: ``folder/<name>.zarr``, absolute."""
    return str(Path(folder).expanduser().absolute() / f"{name}.zarr")


def _complete_store(store: str, tomogram: str) -> bool:
    """True when ``store`` is a complete explain store of ``tomogram``."""
    from tomocam.store import open_store

    if not Path(store, "zarr.json").is_file():
        return False
    try:
        return open_store(store).input_path == tomogram
    except (InputError, KeyError):
        return False


def check_output_folder(folder: str | Path, stores: Sequence[str], *, resume: bool, overwrite: bool) -> str:
    """Check that ``folder`` can take the dataset's ``stores`` and return it absolute; created if missing.

    An :class:`OutputError` when it is a zarr store or a file, is not writable, or holds some of the stores
    already without ``resume`` or ``overwrite`` (nothing is written then).
    """
    path = Path(folder).expanduser().absolute()
    if (path / "zarr.json").is_file():
        raise OutputError(f"output '{path}' is a zarr store; a dataset is written into a folder of stores")
    if path.exists() and not path.is_dir():
        raise OutputError(f"output '{path}' is a file; a dataset is written into a folder of stores")
    existing = [Path(s).name for s in stores if os.path.lexists(s)]
    if existing and not resume and not overwrite:
        shown = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise OutputError(f"output folder '{path}' holds stores of this dataset already ({shown}); pass --resume to "
                          f"continue the dataset or --overwrite to replace them")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".tomocam-write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise OutputError(f"cannot write output folder '{path}' ({err.strerror})") from None
    return str(path)


def _top(summary: RunSummary) -> str:
    return ";".join(f"{name}:{n}" for name, n, _ in summary.top_classes)


def explain_dataset(
    tomograms: Sequence[str],
    output: str | Path,
    config: ExplainConfig,
    *,
    client=None,
    workers: int | None = None,
    scheduler_file: str | None = None,
    cluster: str | None = None,
    progress: bool = False,
    on_plan: Callable[[str, Plan], Sequence[str]] | None = None,
    log: Callable[[str], None] | None = None,
    store_size: Callable[[str], int] | None = None,
    in_flight: int = 2,
) -> DatasetSummary:
    """Explain every tomogram of ``tomograms`` (absolute paths, see :func:`tomocam.dataset.resolve_dataset`) into
    the folder ``output`` with the settings of ``config`` (its ``tomogram`` and ``output`` are ignored; its
    ``resume`` and ``overwrite`` apply to every store).

    With ``client`` given it is used as is; otherwise one cluster is started or joined for the whole dataset
    (:func:`tomocam.deploy.cluster.connect`) while the first tomogram is prepared. ``on_plan(name, plan)`` is
    called once per planned tomogram and returns the warnings to record beside the plan's own; ``log(line)``
    gets one line per finished tomogram; ``store_size(store)`` gives the bytes a finished store occupies (the
    CLI measures them as ``du`` does), else that column stays empty. ``in_flight`` tomograms at most are started
    and not finished at once (:class:`tomocam.dataset.schedule.Pipeline`: the next one's phase 1 starts when the
    previous one's is done). The index ``output/tomocam-dataset.csv`` is
    rewritten at every change of a tomogram's status. Ctrl-C (``KeyboardInterrupt``) marks the running tomogram
    ``interrupted`` and is raised on.
    """
    t0 = time.perf_counter()
    known = {r.path: r.name for r in read_index(output)} if Path(output).is_dir() else {}
    names = store_names(tomograms, known)
    stores = {n: store_path(output, n) for n in names.values()}
    folder = check_output_folder(output, list(stores.values()), resume=config.resume, overwrite=config.overwrite)
    previous = {r.name: r for r in read_index(folder)}
    rows, todo = [], []
    for path, name in names.items():
        if config.resume and _complete_store(stores[name], path):
            old = previous.get(name)
            rows.append(old if old is not None and old.status == "complete" and old.path == path else
                        IndexRow(name, path, "complete"))
        else:
            rows.append(IndexRow(name, path))
            todo.append(name)
    summary = DatasetSummary(folder=folder, rows=[], seconds=0.0, reused=len(rows) - len(todo))
    dataset = _DatasetRun(config, DatasetIndex(folder, rows), summary, todo, {n: p for p, n in names.items()},
                          stores, cluster=cluster, on_plan=on_plan, log=log, store_size=store_size)
    try:
        if client is not None:
            dataset.run(client, None, progress=progress, in_flight=in_flight)
        elif todo:
            from tomocam.deploy.cluster import connect
            from tomocam.pipeline.run import worker_device

            dataset.prepare_ahead(todo[0])  # beside the cluster's start
            device = worker_device(config, cluster)
            with connect(device=device, workers=workers, scheduler_file=scheduler_file, cluster=cluster) as (cl,
                                                                                                             info):
                dataset.run(cl, info.torch_threads, progress=progress, in_flight=in_flight)
    finally:
        dataset.close()
    summary.rows = list(dataset.index.rows.values())
    summary.seconds = time.perf_counter() - t0
    return summary


class _DatasetRun:
    """The tomograms ``todo`` of a dataset on one client: each prepared one ahead on a thread (its store locked,
    planned, created), run by the pipelined scheduler, recorded in the index as it ends (lock released)."""

    def __init__(self, config: ExplainConfig, index: DatasetIndex, summary: DatasetSummary, todo: list[str],
                 paths: dict[str, str], stores: dict[str, str], *, cluster: str | None,
                 on_plan: Callable[[str, Plan], Sequence[str]] | None, log: Callable[[str], None] | None,
                 store_size: Callable[[str], int] | None) -> None:
        self.config, self.index, self.summary, self.todo = config, index, summary, todo
        self.paths, self.stores, self.cluster = paths, stores, cluster
        self.on_plan, self.log, self.store_size = on_plan, log, store_size
        self.warnings: dict[str, tuple[str, ...]] = {}
        self.locks: dict[str, StoreLock] = {}
        self.prepared: dict[str, Future] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tomocam-dataset-plan")
        self.bars: Any = None

    def prepare(self, name: str) -> tuple[Plan, StoreWriter, ExplainConfig]:
        """Lock tomogram ``name``'s store, plan it and create (or reopen) the store (see
        :func:`tomocam.pipeline.run.prepare_run`). The lock is held until :meth:`release`."""
        from tomocam.deploy.slurm import job_running
        from tomocam.pipeline.run import prepare_run
        from tomocam.store.create import check_output
        from tomocam.store.lock import StoreLock

        config = dataclasses.replace(self.config, tomogram=self.paths[name], output=self.stores[name])
        check_output(config.output, resume=config.resume, overwrite=config.overwrite)  # before the lock's folder
        lock = StoreLock(config.output, command=config.command, job_running=job_running)
        lock.acquire()
        self.locks[name] = lock
        plan, writer = prepare_run(config, config.output, self.cluster)
        self.warnings[name] = (*plan.warnings, *(self.on_plan(name, plan) if self.on_plan is not None else ()))
        return plan, writer, config

    def prepare_ahead(self, name: str) -> None:
        """Start preparing tomogram ``name`` on the planning thread."""
        if name not in self.prepared:
            self.prepared[name] = self.pool.submit(self.prepare, name)

    def release(self, name: str) -> None:
        """Release tomogram ``name``'s store lock, if this run holds it."""
        lock = self.locks.pop(name, None)
        if lock is not None:
            lock.release()

    def run(self, client, torch_threads: int | None, *, progress: bool, in_flight: int) -> None:
        """Run every tomogram of ``todo`` on ``client`` through the pipelined scheduler (:class:`Pipeline`), with
        the dataset's bars: tomograms, tiles (per batch, as phase-1 tasks report them), the phases in flight."""
        from tomocam.deploy.cluster import phase1_resources
        from tomocam.deploy.heap import KeepFreedMemory
        from tomocam.pipeline.explain_tiles import PROGRESS_TOPIC
        from tomocam.pipeline.schedule import TomogramRun

        client.register_plugin(KeepFreedMemory())  # before the first task: every worker keeps the memory tasks free
        resources = phase1_resources(client)

        def open_run(name: str) -> TomogramRun:
            self.prepare_ahead(name)
            i = self.todo.index(name)
            if i + 1 < len(self.todo):
                self.prepare_ahead(self.todo[i + 1])
            self.index.update(name, status="running", error="")
            plan, writer, config = self.prepared.pop(name).result()
            plan = dataclasses.replace(plan, torch_threads=torch_threads)
            self.bars.update(tiles, total=(self.bars.tasks[tiles].total or 0) + plan.tile_grid.n_tiles)
            return TomogramRun(plan, writer, client, resume=config.resume, label_fraction=config.label_fraction,
                               resources=resources)

        total = len(self.index.rows)
        with progress_bars(enabled=progress) as self.bars:
            dataset = self.bars.add_task("dataset: tomograms", total=total)
            self.bars.update(dataset, completed=total - len(self.todo))
            tiles = self.bars.add_task("tiles", total=0)
            phases = self.bars.add_task("", total=None)
            self._dataset_bar = dataset
            client.subscribe_topic(PROGRESS_TOPIC, lambda event: self.bars.advance(tiles, event[1]))
            try:
                Pipeline(client, self.todo, in_flight=in_flight, start=open_run, on_done=self.done,
                         on_failed=self.failed, on_phase=lambda text: self.bars.update(phases, description=text)).run()
            finally:
                client.unsubscribe_topic(PROGRESS_TOPIC)

    def _report(self, name: str, line: str) -> None:
        self.release(name)
        self.bars.advance(self._dataset_bar, 1)
        if self.log is not None:
            self.log(f"[{int(self.bars.tasks[self._dataset_bar].completed)}/{len(self.index.rows)}] {line}")

    def done(self, name: str, result: RunSummary) -> None:
        """Tomogram ``name``'s store is complete: its row, its line."""
        self.release(name)  # first: the store's size is measured without the lock file
        self.summary.tiles += result.n_tiles
        row = self.index.update(name, status="complete", tiles=result.n_tiles,
                                seconds=round(result.seconds["total"], 3),
                                store_bytes=self.store_size(result.store) if self.store_size else None,
                                top_classes=_top(result), warnings=" | ".join(self.warnings.get(name, ())))
        self._report(name, f"{name}: complete, {row.tiles} tiles in {row.seconds:.1f} s "
                           f"({result.tiles_per_second:.0f} tiles/s) -> {result.store}")

    def failed(self, name: str, err: BaseException) -> None:
        """Tomogram ``name`` failed: its row with the one-line reason, its line."""
        reason = " ".join(str(err).split())
        self.summary.failures[name] = err  # type: ignore[assignment]
        self.index.update(name, status="failed", error=reason)
        self._report(name, f"{name}: failed: {reason}")

    def close(self) -> None:
        """At the end, or on an interrupt or error: tomograms still running are ``interrupted``, the planning
        thread ends and every lock this run holds is released."""
        for future in self.prepared.values():
            future.cancel()
        self.pool.shutdown(wait=True)
        for name in self.todo:
            if self.index.rows[name].status == "running":
                self.index.update(name, status="interrupted")
        for name in list(self.locks):
            self.release(name)
