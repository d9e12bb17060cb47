"""The streaming scheduler of one tomogram's explain: its steps as the methods of :class:`TomogramRun`.

Steps, each named for the event it answers:

- :meth:`TomogramRun.submit`: phase-1 tasks for every block not done yet (:mod:`.explain_tiles`), and the phase-2
  boxes whose blocks were all done before a ``--resume``.
- :meth:`TomogramRun.block_done`: a block's tiles are stored; a heatmap box (:mod:`.stitch_boxes`) is submitted as
  soon as every block covering it is done, while phase 1 goes on.
- :meth:`TomogramRun.phase1_done`: every tile is stored; the label threshold (a fraction of the largest tile-map
  value) is now known, so the label boxes are submitted.
- :meth:`TomogramRun.box_done`: a phase-2 box is stored.
- :meth:`TomogramRun.finish`: every task is done; finalize (:mod:`.finalize`), timings, the completion marker.

Each event step returns the futures it submitted, so one loop over ``distributed.as_completed`` can drive one run
(:func:`run_plan`) or several side by side: a dataset scheduler starts tomogram ``i + 1``'s :meth:`submit` once
tomogram ``i``'s :attr:`TomogramRun.phase1_complete` is true, and routes each result to its run's
:meth:`on_result`.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tomocam.pipeline.explain_tiles import PROGRESS_TOPIC, BlockResult, explain_block
from tomocam.pipeline.finalize import finalize
from tomocam.pipeline.plan import Plan
from tomocam.pipeline.stitch_boxes import chunk_tiles, stitch_heatmaps, write_labels
from tomocam.progress import progress_bars
from tomocam.store.pyramid import label_threshold
from tomocam.store.writer import StoreWriter

Index = tuple[int, ...]


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


def top_classes(plan: Plan, probabilities: np.ndarray, n: int = 5) -> list[tuple[str, int, float]]:
    """The classes predicted for most tiles, from per-tile ``probabilities`` ``(K, *grid)``: ``(name, tiles, mean
    probability)``."""
    probs = probabilities.reshape(len(plan.model_classes), -1)  # (K, tiles)
    winners = np.bincount(probs.argmax(axis=0), minlength=probs.shape[0])
    order = np.argsort(-winners, kind="stable")[:n]
    return [(plan.model_classes[i], int(winners[i]), float(probs[i].mean())) for i in order if winners[i] > 0]


def blocks_of_box(plan: Plan, index: Index) -> set[Index]:
    """The phase-1 blocks holding the tiles that cover level-0 chunk (phase-2 box) ``index``."""
    _, _, ranges = chunk_tiles(plan, index)
    axes = [range(r.start // b, (r.stop - 1) // b + 1) for r, b in zip(ranges, plan.block)]
    return set(itertools.product(*axes))


class TomogramRun:
    """One tomogram's phases 1 and 2 and finalize on ``client`` into the store ``writer`` opened (see the module
    docstring for the steps). ``resume``: skip the blocks marked done; ``label_fraction``: the label threshold's
    fraction of the largest tile-map value; ``resources``: the phase-1 tasks' Dask resources."""

    def __init__(self, plan: Plan, writer: StoreWriter, client, *, resume: bool, label_fraction: float,
                 resources: dict[str, float] | None = None) -> None:
        self.plan, self.writer, self.client = plan, writer, client
        self.label_fraction, self.resources = label_fraction, resources
        self.done_before = writer.done_blocks() if resume else set()
        self.todo = [b for b in plan.blocks if b.index not in self.done_before]
        self.futures: list = []
        self.seconds: dict[str, float] = {}
        self.threshold: float | None = None
        self._left = len(self.todo)
        self._t0 = time.perf_counter()
        self._bars: Any = None
        self._tasks: tuple[Any, Any] = (None, None)
        self._boxes: list[Index] = []
        self._waiting: dict[Index, set[Index]] = {}  # box -> blocks it still needs
        self._needed_by: dict[Index, list[Index]] = {}  # block -> boxes waiting for it

    @property
    def phase1_complete(self) -> bool:
        """Every block's tiles are stored (the next tomogram's phase 1 may start)."""
        return self.threshold is not None

    def _submit(self, *args, priority: int = 0) -> Any:
        future = self.client.submit(*args, pure=False, priority=priority, resources=None if priority else
                                    self.resources)
        self.futures.append(future)
        return future

    def submit(self) -> list:
        """Step 1: the phase-1 tasks first, then the phase-2 bookkeeping; returns the futures submitted."""
        plan = self.plan
        self._t0 = time.perf_counter()
        new = [self._submit(explain_block, plan, self.writer, b) for b in self.todo]
        # the largest tile-map value, block by block: read back for blocks done before a resume, else from results
        self._peak = max((self.writer.block_peak(b) for b in plan.blocks if b.index in self.done_before),
                         default=-np.inf)
        if self.writer.start_stitching():  # False: phase 2 was complete before a resume
            self._boxes = list(itertools.product(*(range(n) for n in plan.chunk_grid)))
        self._waiting = {c: blocks_of_box(plan, c) - self.done_before for c in self._boxes}
        for c, needs in self._waiting.items():
            for b in needs:
                self._needed_by.setdefault(b, []).append(c)
        new += [self._stitch(c) for c in self._boxes if not self._waiting[c]]  # resumed: its blocks were done
        if self._left == 0:
            new += self.phase1_done()
        return new

    def show_progress(self, bars) -> Any:
        """Draw this run's bars on ``bars`` (:func:`tomocam.progress.progress_bars`); returns phase 1's task."""
        self._bars = bars
        p1 = bars.add_task("phase 1: CAMs of tiles", total=sum(b.n_tiles for b in self.todo))
        p2 = bars.add_task("phase 2: heatmaps and labels", total=2 * len(self._boxes))
        self._tasks = (p1, p2)
        return p1

    def _stitch(self, box: Index) -> Any:  # phase-2 tasks go before the next phase-1 block on a busy worker
        return self._submit(stitch_heatmaps, self.plan, self.writer, box, priority=1)

    def on_result(self, result: Any) -> list:
        """Route a finished task's result to :meth:`block_done` or :meth:`box_done`; returns new futures."""
        return self.block_done(result) if isinstance(result, BlockResult) else self.box_done(result)

    def block_done(self, result: BlockResult) -> list:
        """A phase-1 block is stored: submit the boxes that waited for it last (and the labels after the last)."""
        self._left -= 1
        self._peak = max(self._peak, result.peak)
        new = []
        for c in self._needed_by.get(result.index, []):
            self._waiting[c].discard(result.index)
            if not self._waiting[c]:
                new.append(self._stitch(c))
        return new + (self.phase1_done() if self._left == 0 else [])

    def phase1_done(self) -> list:
        """Every tile is stored: record ``tiles/`` whole, fix the label threshold, submit every label box."""
        plan = self.plan
        self.writer.record_tiles_whole()
        self.seconds["phase1"] = time.perf_counter() - self._t0
        if self._bars is not None:
            self._bars.update(self._tasks[0], completed=self._bars.tasks[self._tasks[0]].total)
        upsampling = float(np.prod(plan.tile_grid.tile) / np.prod(plan.feature_shape))
        self.threshold = label_threshold(self._peak, self.label_fraction, upsampling)
        return [self._submit(write_labels, plan, self.writer, c, self.threshold, priority=1) for c in self._boxes]

    def box_done(self, index: Index) -> list:  # noqa: ARG002  (the box's index: every box counts the same)
        """A phase-2 box is stored: advance the bar; nothing new to submit."""
        if self._bars is not None:
            self._bars.advance(self._tasks[1], 1)
        return []

    def cancel(self) -> None:
        """Cancel every task this run submitted (on an error or an interrupt)."""
        self.client.cancel(self.futures)

    def finish(self) -> RunSummary:
        """Every task is done: record phase 2's arrays whole, finalize, write timings and the completion marker."""
        assert self.threshold is not None, "finish() before phase 1 was done"
        plan, writer, seconds = self.plan, self.writer, self.seconds
        writer.record_stitched_whole()
        seconds["phase2"] = time.perf_counter() - self._t0 - seconds["phase1"]
        t2 = time.perf_counter()
        task = self._bars.add_task("finalize: pyramid, labels, scores", total=1) if self._bars is not None else None
        finalize(writer, self.threshold, self.label_fraction)
        seconds["finalize"] = time.perf_counter() - t2
        seconds["total"] = time.perf_counter() - self._t0
        if task is not None:
            self._bars.advance(task, 1)
        writer.complete(seconds)
        n_blocks = len(plan.blocks)
        return RunSummary(store=writer.path, n_tiles=plan.tile_grid.n_tiles, blocks_total=n_blocks,
                          blocks_computed=len(self.todo), blocks_skipped=n_blocks - len(self.todo), seconds=seconds,
                          top_classes=top_classes(plan, writer.probabilities()), warnings=plan.warnings)


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


def run_plan(plan: Plan, writer: StoreWriter, client, *, resume: bool, label_fraction: float,
             progress: bool = False) -> RunSummary:
    """One tomogram's run on ``client`` into the store ``writer`` opened: :class:`TomogramRun`'s steps driven by
    one loop over the finished tasks. The phase-1 bar advances per batch of tiles."""
    from distributed import as_completed

    from tomocam.deploy.cluster import phase1_resources
    from tomocam.deploy.heap import KeepFreedMemory

    client.register_plugin(KeepFreedMemory())  # before the first task: every worker keeps the memory tasks free
    tiles_progress = _TilesProgress()
    client.subscribe_topic(PROGRESS_TOPIC, tiles_progress)
    run = TomogramRun(plan, writer, client, resume=resume, label_fraction=label_fraction,
                      resources=phase1_resources(client))
    try:
        pending = as_completed(run.submit())  # phase 1 starts first: the progress display (rich: 0.2 s) overlaps it
        with progress_bars(enabled=progress) as bars:
            tiles_progress.show_on(bars, run.show_progress(bars))
            for future in pending:
                for new in run.on_result(future.result()):
                    pending.add(new)
            return run.finish()
    except BaseException:
        run.cancel()
        raise
    finally:
        client.unsubscribe_topic(PROGRESS_TOPIC)
