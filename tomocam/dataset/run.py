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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tomocam.dataset.index import DatasetIndex, IndexRow, read_index
from tomocam.dataset.names import store_names
from tomocam.dataset.schedule import Pipeline
from tomocam.errors import InputError, OutputError, TomocamError
from tomocam.progress import progress_bars

if TYPE_CHECKING:
    from tomocam.pipeline import ExplainConfig, Plan, RunSummary
    from tomocam.pipeline.schedule import TomogramRun
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
    index = DatasetIndex(folder, rows)
    by_name = {n: p for p, n in names.items()}
    summary = DatasetSummary(folder=folder, rows=[], seconds=0.0, reused=len(rows) - len(todo))
    warnings: dict[str, tuple[str, ...]] = {}

    def prepare(name: str) -> tuple[Plan, StoreWriter, ExplainConfig]:
        from tomocam.pipeline.run import prepare_run

        cfg = dataclasses.replace(config, tomogram=by_name[name], output=stores[name])
        plan, writer = prepare_run(cfg, stores[name], cluster)
        warnings[name] = (*plan.warnings, *(on_plan(name, plan) if on_plan is not None else ()))
        return plan, writer, cfg

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tomocam-dataset-plan") as pool:
        # tomograms are prepared one ahead of the scheduler, in order, on this thread beside the loop
        prepared = {name: pool.submit(prepare, name) for name in todo[:1]}

        def start(client, torch_threads: int | None) -> Callable[[str], TomogramRun]:
            from tomocam.deploy.cluster import phase1_resources
            from tomocam.pipeline.schedule import TomogramRun

            resources = phase1_resources(client)

            def open_run(name: str) -> TomogramRun:
                i = todo.index(name)
                if i + 1 < len(todo):
                    prepared[todo[i + 1]] = pool.submit(prepare, todo[i + 1])
                index.update(name, status="running", error="")
                plan, writer, cfg = prepared.pop(name).result()
                plan = dataclasses.replace(plan, torch_threads=torch_threads)
                return TomogramRun(plan, writer, client, resume=cfg.resume, label_fraction=cfg.label_fraction,
                                   resources=resources)

            return open_run

        def run_all(client, torch_threads: int | None) -> None:
            run_tomograms(client, todo, start(client, torch_threads), index, summary, progress=progress,
                          in_flight=in_flight, done_before=len(rows) - len(todo), warnings=warnings, log=log,
                          store_size=store_size)

        try:
            if client is not None:
                run_all(client, None)
            elif todo:
                from tomocam.deploy.cluster import connect
                from tomocam.pipeline.run import worker_device

                device = worker_device(config, cluster)
                with connect(device=device, workers=workers, scheduler_file=scheduler_file,
                             cluster=cluster) as (cl, info):
                    run_all(cl, info.torch_threads)
        except BaseException:
            for name in todo:
                if index.rows[name].status == "running":
                    index.update(name, status="interrupted")
            for future in prepared.values():
                future.cancel()
            raise
    summary.rows = list(index.rows.values())
    summary.seconds = time.perf_counter() - t0
    return summary


def run_tomograms(client, names: Sequence[str], open_run: Callable[[str], TomogramRun], index: DatasetIndex,
                  summary: DatasetSummary, *, progress: bool, in_flight: int, done_before: int,
                  warnings: dict[str, tuple[str, ...]], log: Callable[[str], None] | None,
                  store_size: Callable[[str], int] | None) -> None:
    """Run the tomograms ``names`` on ``client`` through the pipelined scheduler (:class:`Pipeline`), recording
    each one's outcome in ``index`` and ``summary``, with the dataset's bars: tomograms, tiles (per batch, as
    phase-1 tasks report them) and the phases of the tomograms in flight."""
    from tomocam.deploy.heap import KeepFreedMemory
    from tomocam.pipeline.explain_tiles import PROGRESS_TOPIC

    client.register_plugin(KeepFreedMemory())  # before the first task: every worker keeps the memory tasks free
    total = len(index.rows)
    with progress_bars(enabled=progress) as bars:
        dataset_bar = bars.add_task("dataset: tomograms", total=total)
        bars.update(dataset_bar, completed=done_before)
        tiles_bar = bars.add_task("tiles", total=0)
        phases = bars.add_task("", total=None)

        def opened(name: str) -> TomogramRun:
            run = open_run(name)
            bars.update(tiles_bar, total=(bars.tasks[tiles_bar].total or 0) + sum(b.n_tiles for b in run.todo))
            return run

        def report(line: str) -> None:
            bars.advance(dataset_bar, 1)
            if log is not None:
                log(f"[{int(bars.tasks[dataset_bar].completed)}/{total}] {line}")

        def done(name: str, result: RunSummary) -> None:
            summary.tiles += result.n_tiles
            row = index.update(name, status="complete", tiles=result.n_tiles,
                               seconds=round(result.seconds["total"], 3),
                               store_bytes=store_size(result.store) if store_size else None,
                               top_classes=_top(result), warnings=" | ".join(warnings.get(name, ())))
            report(f"{name}: complete, {row.tiles} tiles in {row.seconds:.1f} s ({result.tiles_per_second:.0f} "
                   f"tiles/s) -> {result.store}")

        def failed(name: str, err: BaseException) -> None:
            reason = " ".join(str(err).split())
            summary.failures[name] = err  # type: ignore[assignment]
            index.update(name, status="failed", error=reason)
            report(f"{name}: failed: {reason}")

        client.subscribe_topic(PROGRESS_TOPIC, lambda event: bars.advance(tiles_bar, event[1]))
        try:
            Pipeline(client, names, in_flight=in_flight, start=opened, on_done=done, on_failed=failed,
                     on_phase=lambda text: bars.update(phases, description=text)).run()
        finally:
            client.unsubscribe_topic(PROGRESS_TOPIC)
