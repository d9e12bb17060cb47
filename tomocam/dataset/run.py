"""Explain a whole dataset on one warm cluster: every tomogram into ``OUT/<name>.zarr``, an index beside them.

The cluster starts once and its workers stay warm: each worker loads the model once
(:func:`tomocam.pipeline.phase1._model` keeps it per process) and every tomogram's tasks run on it. While a
tomogram runs, the next one is prepared in a thread beside it (header checks, plan, probe, store creation), so
that work is off the path between two runs.

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
from typing import TYPE_CHECKING

from tomocam.dataset.index import DatasetIndex, IndexRow, read_index
from tomocam.dataset.names import store_names
from tomocam.errors import InputError, OutputError, TomocamError
from tomocam.progress import progress_bars

if TYPE_CHECKING:
    from tomocam.pipeline import ExplainConfig, Plan, RunSummary

#: Errors of one tomogram: recorded in the index while the others go on.
TOMOGRAM_ERRORS = (InputError, OutputError)


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
) -> DatasetSummary:
    """Explain every tomogram of ``tomograms`` (absolute paths, see :func:`tomocam.dataset.resolve_dataset`) into
    the folder ``output`` with the settings of ``config`` (its ``tomogram`` and ``output`` are ignored; its
    ``resume`` and ``overwrite`` apply to every store).

    With ``client`` given it is used as is; otherwise one cluster is started or joined for the whole dataset
    (:func:`tomocam.deploy.cluster.connect`) while the first tomogram is prepared. ``on_plan(name, plan)`` is
    called once per planned tomogram and returns the warnings to record beside the plan's own; ``log(line)``
    gets one line per finished tomogram; ``store_size(store)`` gives the bytes a finished store occupies (the
    CLI measures them as ``du`` does), else that column stays empty. The index ``output/tomocam-dataset.csv`` is
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

    def prepare(name: str) -> tuple[Plan, ExplainConfig, tuple[str, ...]]:
        from tomocam.pipeline.run import _prepare

        cfg = dataclasses.replace(config, tomogram=by_name[name], output=stores[name])
        plan = _prepare(cfg, stores[name], cluster, None)
        extra = tuple(on_plan(name, plan)) if on_plan is not None else ()
        return plan, cfg, (*plan.warnings, *extra)

    def run_all(client, torch_threads: int | None, first: Future | None) -> None:
        from tomocam.pipeline.run import run_plan

        with progress_bars(enabled=progress) as bars:
            n_done = len(rows) - len(todo)
            dataset_bar = bars.add_task("dataset: tomograms", total=len(rows))
            bars.update(dataset_bar, completed=n_done)
            tiles_bar = bars.add_task("tiles", total=None)
            current = bars.add_task("", total=None, visible=bool(todo))
            ahead = first
            for i, name in enumerate(todo):
                planned = ahead if ahead is not None else pool.submit(prepare, name)
                ahead = pool.submit(prepare, todo[i + 1]) if i + 1 < len(todo) else None
                index.update(name, status="running", error="")
                bars.update(current, description=f"{name}: planning")
                try:
                    plan, cfg, warnings = planned.result()
                    tiles_total = (bars.tasks[tiles_bar].total or 0) + plan.grid.n_tiles
                    bars.update(tiles_bar, total=tiles_total)
                    bars.update(current, description=f"{name}: explaining {plan.grid.n_tiles} tiles")
                    plan = dataclasses.replace(plan, torch_threads=torch_threads)
                    result = run_plan(plan, cfg, client, progress=False)
                except TOMOGRAM_ERRORS as err:
                    reason = " ".join(str(err).split())
                    summary.failures[name] = err
                    index.update(name, status="failed", error=reason)
                    line = f"{name}: failed: {reason}"
                except BaseException:
                    index.update(name, status="interrupted")
                    if ahead is not None:
                        ahead.cancel()
                    raise
                else:
                    summary.tiles += result.n_tiles
                    bars.advance(tiles_bar, result.n_tiles)
                    row = index.update(name, status="complete", tiles=result.n_tiles,
                                       seconds=round(result.seconds["total"], 3),
                                       store_bytes=store_size(result.store) if store_size else None,
                                       top_classes=_top(result),
                                       warnings=" | ".join(warnings))
                    line = (f"{name}: complete, {row.tiles} tiles in {row.seconds:.1f} s "
                            f"({result.tiles_per_second:.0f} tiles/s) -> {result.store}")
                bars.advance(dataset_bar, 1)
                if log is not None:
                    done = int(bars.tasks[dataset_bar].completed)
                    log(f"[{done}/{len(rows)}] {line}")

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tomocam-dataset-plan") as pool:
        first = pool.submit(prepare, todo[0]) if todo else None
        if client is not None:
            run_all(client, None, first)
        elif todo:
            from tomocam.deploy.cluster import connect
            from tomocam.pipeline.run import _cluster_device

            device = _cluster_device(config, cluster)
            with connect(device=device, workers=workers, scheduler_file=scheduler_file, cluster=cluster) as (cl,
                                                                                                             info):
                run_all(cl, info.torch_threads, first)
    summary.rows = list(index.rows.values())
    summary.seconds = time.perf_counter() - t0
    return summary
