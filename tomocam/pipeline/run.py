"""Run a whole explain: plan, store, phase 1, phase 2, finalize, with progress bars and a summary."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from tomocam.pipeline.config import ExplainConfig
from tomocam.pipeline.finalize import finalize
from tomocam.pipeline.phase1 import PROGRESS_TOPIC, BlockResult, block_peak, done_blocks, explain_block
from tomocam.pipeline.phase2 import chunk_tiles, stitch_heatmaps, write_labels
from tomocam.pipeline.plan import Plan, make_plan
from tomocam.progress import progress_bars
from tomocam.store.create import open_or_create, phase2_arrays, prepare_output
from tomocam.store.manifest import forget_whole, is_whole, mark_complete, record_whole, update_attrs, whole_arrays
from tomocam.store.pyramid import label_threshold


@dataclass
class RunSummary:
    """What a run did: counts, seconds, where the output is, and the most frequent predicted classes."""

    store: str
    n_tiles: int
    blocks_total: int
    blocks_computed: int
    blocks_skipped: int
    seconds: dict[str, float]
    top_classes: list[tuple[str, int, float]] = field(default_factory=list)
    warnings: tuple[str, ...] = ()

    @property
    def tiles_per_second(self) -> float:
        """Throughput of the whole run (all phases) over the tiles computed in this run."""
        total = self.seconds.get("total", 0.0)
        computed = self.n_tiles * self.blocks_computed / max(1, self.blocks_total)
        return computed / total if total > 0 else 0.0


def _top_classes(plan: Plan, n: int = 5) -> list[tuple[str, int, float]]:
    """The classes predicted for most tiles: ``(name, tiles, mean probability)``."""
    root = zarr.open_group(plan.store, mode="r")
    probs = np.asarray(root["scores/probabilities"][...]).reshape(len(plan.model_classes), -1)  # (K, tiles)
    winners = np.bincount(probs.argmax(axis=0), minlength=probs.shape[0])
    order = np.argsort(-winners, kind="stable")[:n]
    return [(plan.model_classes[i], int(winners[i]), float(probs[i].mean())) for i in order if winners[i] > 0]


def _blocks_of_chunk(plan: Plan, index: tuple[int, ...]) -> set[tuple[int, ...]]:
    """The phase-1 blocks holding the tiles that cover level-0 chunk ``index``."""
    _, _, ranges = chunk_tiles(plan, index)
    axes = [range(r.start // b, (r.stop - 1) // b + 1) for r, b in zip(ranges, plan.block)]
    return set(itertools.product(*axes))


class _TilesProgress:
    """The handler of phase-1 progress events (tiles per batch): counts them until the bar exists, then advances
    it (events arrive on the client's event-loop thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._early = 0
        self._bar: tuple[Any, Any] | None = None

    def __call__(self, event: tuple[float, int]) -> None:
        with self._lock:
            if self._bar is None:
                self._early += event[1]
            else:
                self._bar[0].advance(self._bar[1], event[1])

    def show_on(self, bars, task) -> None:
        """From now on advance ``task`` of ``bars``, by the tiles counted so far first."""
        with self._lock:
            self._bar = (bars, task)
            bars.advance(task, self._early)


def run_plan(plan: Plan, config: ExplainConfig, client, *, progress: bool = False) -> RunSummary:
    """Phases 1 and 2 and finalize on ``client`` for a plan whose store exists (see :func:`explain_tomogram`).

    Streaming: a chunk's heatmaps are stitched as soon as the phase-1 blocks covering it are done, while phase 1
    goes on; the labels follow once phase 1 is complete (their threshold needs every tile map). The phase-1 bar
    advances per batch of tiles.
    """
    from distributed import as_completed

    from tomocam.deploy.cluster import phase1_resources
    from tomocam.deploy.heap import KeepFreedMemory

    client.register_plugin(KeepFreedMemory())  # before the first task: every worker keeps the memory tasks free
    t0 = time.perf_counter()
    blocks = plan.blocks
    done = done_blocks(plan) if config.resume else set()
    todo = [b for b in blocks if b.index not in done]
    # Phase 1 starts first: the bookkeeping below and the progress display (importing rich: 0.2 s) overlap it.
    tiles_progress = _TilesProgress()
    client.subscribe_topic(PROGRESS_TOPIC, tiles_progress)
    resources = phase1_resources(client)
    futures = [client.submit(explain_block, plan, b, resources=resources, pure=False) for b in todo]
    stitched = phase2_arrays(plan)
    restitch = not is_whole(plan.store, stitched)
    if restitch:  # phase 2 rewrites its arrays in full, and everything derived from them is rebuilt
        forget_whole(plan.store, *[n for n in whole_arrays(plan.store) if not n.startswith("tiles/")])
    chunks = list(itertools.product(*(range(n) for n in plan.chunk_grid))) if restitch else []
    waiting = {c: _blocks_of_chunk(plan, c) - done for c in chunks}  # chunk -> blocks it still needs
    needed_by: dict[tuple[int, ...], list] = {}
    for c, needs in waiting.items():
        for b in needs:
            needed_by.setdefault(b, []).append(c)
    seconds: dict[str, float] = {}
    threshold = None
    # the largest tile-map value, block by block: read back for blocks done before a resume, else from results
    peak = max((block_peak(plan, b) for b in blocks if b.index in done), default=-np.inf)
    with progress_bars(enabled=progress) as bars:
        p1 = bars.add_task("phase 1: CAMs of tiles", total=sum(b.n_tiles for b in todo))
        p2 = bars.add_task("phase 2: heatmaps and labels", total=2 * len(chunks))
        tiles_progress.show_on(bars, p1)
        left = len(todo)
        pending = as_completed(futures)

        def submit(*args) -> None:  # phase-2 tasks go before the next phase-1 block on a busy worker
            futures.append(client.submit(*args, pure=False, priority=1))
            pending.add(futures[-1])

        def phase1_done() -> float:
            tiles = zarr.open_group(plan.store, mode="r")["tiles"]
            record_whole(plan.store, *[f"tiles/{name}" for name in tiles.array_keys()])
            seconds["phase1"] = time.perf_counter() - t0
            bars.update(p1, completed=bars.tasks[p1].total)
            upsampling = float(np.prod(plan.grid.tile) / np.prod(plan.feature_shape))
            found = label_threshold(peak, config.label_fraction, upsampling)
            for c in chunks:
                submit(write_labels, plan, c, found)
            return found

        try:
            for c in chunks:
                if not waiting[c]:  # resumed: its blocks were done before
                    submit(stitch_heatmaps, plan, c)
            if left == 0:
                threshold = phase1_done()
            for future in pending:
                result = future.result()
                if isinstance(result, BlockResult):
                    left -= 1
                    peak = max(peak, result.peak)
                    for c in needed_by.get(result.index, []):
                        waiting[c].discard(result.index)
                        if not waiting[c]:
                            submit(stitch_heatmaps, plan, c)
                    if left == 0:
                        threshold = phase1_done()
                else:
                    bars.advance(p2, 1)
        except BaseException:
            client.cancel(futures)
            raise
        finally:
            client.unsubscribe_topic(PROGRESS_TOPIC)
        record_whole(plan.store, *stitched)
        seconds["phase2"] = time.perf_counter() - t0 - seconds["phase1"]
        task = bars.add_task("finalize: pyramid, labels, scores", total=1)
        t2 = time.perf_counter()
        assert threshold is not None  # set when the last phase-1 block finished
        finalize(plan, threshold, config.label_fraction)
        seconds["finalize"] = time.perf_counter() - t2
        seconds["total"] = time.perf_counter() - t0
        bars.advance(task, 1)
    update_attrs(plan.store, timings=seconds)
    mark_complete(plan.store)
    return RunSummary(
        store=plan.store,
        n_tiles=plan.grid.n_tiles,
        blocks_total=len(blocks),
        blocks_computed=len(todo),
        blocks_skipped=len(blocks) - len(todo),
        seconds=seconds,
        top_classes=_top_classes(plan),
        warnings=plan.warnings,
    )


def _prepare(config: ExplainConfig, store: str, cluster: str | None, on_plan) -> Plan:
    """Check the inputs, make the plan, probe the output folder and create (or reopen) the store."""
    if cluster == "slurm":  # the workers' device comes from the SLURM settings, not from this (login) node
        device = _cluster_device(config, cluster)
        plan = dataclasses.replace(make_plan(dataclasses.replace(config, device="cpu"), store), device=device)
    else:
        plan = make_plan(config, store)
    prepare_output(store, resume=config.resume, overwrite=config.overwrite)
    if on_plan is not None:
        on_plan(plan)
    open_or_create(plan, config)
    return plan


def _cluster_device(config: ExplainConfig, cluster: str | None) -> str:
    """The device of the workers a run starts: from the SLURM settings for SLURM workers, else as :func:`make_plan`
    resolves it."""
    if cluster == "slurm":
        from tomocam.deploy.slurm import load_slurm_config, slurm_device

        return slurm_device(config.device, load_slurm_config())
    from tomocam.device import worker_device

    return worker_device(config.device)


def explain_tomogram(
    config: ExplainConfig,
    *,
    client=None,
    workers: int | None = None,
    scheduler_file: str | None = None,
    cluster: str | None = None,
    progress: bool = False,
    on_plan=None,
) -> RunSummary:
    """Explain ``config.tomogram`` into the store ``config.output``; returns a :class:`RunSummary`.

    Inputs and settings are checked (and the output folder probed) before anything is written; the store gets
    its completion marker only once every part is written. With ``client`` given, it is used as is; otherwise a
    cluster is started or joined (:func:`tomocam.deploy.cluster.connect`) while the inputs are checked and the
    store created in a thread beside it: new workers import torch and warm their device up
    (:mod:`tomocam.deploy.warmup`) meanwhile, so a run pays the longer of the two, not both (on an H200 machine
    each took 5-9 s). ``on_plan(plan)`` is called once the plan is made (the CLI prints warnings there).
    """
    from concurrent.futures import ThreadPoolExecutor

    from tomocam.deploy.cluster import connect

    store = str(Path(config.output).expanduser().absolute())
    if client is not None:
        return run_plan(_prepare(config, store, cluster, on_plan), config, client, progress=progress)
    device = _cluster_device(config, cluster)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tomocam-plan") as pool:
        planned = pool.submit(_prepare, config, store, cluster, on_plan)
        with connect(device=device, workers=workers, scheduler_file=scheduler_file, cluster=cluster) as (cl, info):
            plan = dataclasses.replace(planned.result(), torch_threads=info.torch_threads)
            return run_plan(plan, config, cl, progress=progress)
