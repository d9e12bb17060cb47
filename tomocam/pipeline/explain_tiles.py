"""Phase 1, explaining the tiles: CAMs of every tile, one Dask task per block of tiles.

A task reads its block's voxels in one slab, checks them for NaN/Inf, moves the slab to the device once, cuts and
normalises tiles there batch by batch (:mod:`tomocam.models.inputs`), runs them through :func:`tomocam.compute_cams`
(all classes from one pass) and hands the block's logits, feature-resolution maps and the label method's map
bounds to the store writer (:meth:`tomocam.store.writer.StoreWriter.write_block`), which writes the chunks that
are the block's own and then the block's ``done`` marker: a block is either done (and skipped on ``--resume``)
or recomputed in full.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tomocam.explain.methods import AUTOCAST_DTYPES
from tomocam.pipeline.plan import Plan
from tomocam.read import check_finite
from tomocam.store.writer import StoreWriter
from tomocam.tile import Block, read_slab, slab_starts

_MODELS: dict[tuple, tuple] = {}
_MODELS_LOCK = threading.Lock()


@dataclass(frozen=True)
class BlockResult:
    """What a phase-1 task returns: its block index, tile count, seconds spent, and the largest value of the
    label method's maps in the block (the label threshold is a fraction of the largest over all blocks)."""

    index: tuple[int, ...]
    n_tiles: int
    seconds: float
    peak: float


#: Topic of the per-batch progress events phase-1 tasks send to the client (:func:`report_tiles`).
PROGRESS_TOPIC = "tomocam-phase1-tiles"


def report_tiles(n: int) -> None:
    """Tell the client that ``n`` more tiles are explained (an event on :data:`PROGRESS_TOPIC`; nothing outside
    a Dask worker). Events are batched by Dask, so this costs microseconds per batch."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return
    worker.log_event(PROGRESS_TOPIC, n)


def _model(plan: Plan):
    """This worker's model for ``plan`` (loaded once per worker process and device) and the lock that
    serialises its use: :func:`tomocam.compute_cams` hooks the model, so two threads must not share it at once.

    Torch's thread count is set on every call: a worker's threads may be reused by other tasks in between.
    """
    import torch

    from tomocam.models import load_checkpoint

    if plan.torch_threads:
        torch.set_num_threads(plan.torch_threads)
    key = (plan.model_path, plan.model_sha256, plan.device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            model, _ = load_checkpoint(plan.model_path, device=plan.device)
            if len(plan.tile_grid.tile) == 3:  # 3-D convolutions run faster channels-last on GPUs and CPUs alike
                model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # not in stubs
            _MODELS[key] = (model, threading.Lock())
        return _MODELS[key]


def explain_block(plan: Plan, writer: StoreWriter, block: Block) -> BlockResult:
    """Phase-1 task: CAMs of every tile of ``block``, written through ``writer`` (which marks the block done).

    The block's slab is read once and moved to the device once; tiles are cut, resampled and normalised there
    batch by batch (:func:`tomocam.models.inputs.model_inputs`), and the results stay on the device until the
    block is done, so the host only reads the slab and writes the block's results.
    """
    import torch

    from tomocam import compute_cams
    from tomocam.models.inputs import model_inputs
    from tomocam.stitch.labels import map_bounds

    t0 = time.perf_counter()
    model, lock = _model(plan)
    slab, origin = read_slab(plan.tomogram.array(), plan.tile_grid, block)
    check_finite(slab, plan.tomogram, origin)
    pin = plan.device.startswith("cuda")
    volume = torch.from_numpy(slab)
    volume = volume.pin_memory().to(plan.device, non_blocking=True) if pin else volume  # (*slab)
    starts = torch.from_numpy(slab_starts(plan.tile_grid, block, origin)).to(plan.device)  # (n, nd), on the device once
    spec = plan.input_spec
    autocast = getattr(torch, AUTOCAST_DTYPES[plan.autocast]) if plan.autocast else None
    every_class = plan.class_indices == tuple(range(len(plan.model_classes)))  # the default: no selection copy
    select = None if every_class else torch.tensor(plan.class_indices, device=plan.device)
    n = block.n_tiles
    # the block's results, filled batch by batch (no list of batches and no concatenation: one copy of them)
    logits = torch.empty((n, len(plan.model_classes)), device=plan.device)  # (n, K)
    maps = {m: torch.empty((n, len(plan.class_indices), *plan.feature_shape), device=plan.device) for m in plan.methods}
    with lock, torch.no_grad():
        for a in range(0, n, plan.batch_size):
            b = min(a + plan.batch_size, n)
            x = model_inputs(volume, starts[a:b], spec)  # (b - a, 1, *model_input)
            result = compute_cams(model, x, plan.layer, methods=plan.methods, autocast=autocast)
            logits[a:b] = result.logits  # (b - a, K)
            for m in plan.methods:
                maps[m][a:b] = result.maps[m] if select is None else result.maps[m].index_select(1, select)
            report_tiles(b - a)
    bounds = map_bounds(maps[plan.label_method], len(plan.feature_shape)).cpu().numpy()  # (n, k, 2)
    writer.write_block(block, logits.cpu().numpy(), bounds, {m: maps[m].cpu().numpy() for m in plan.methods})
    return BlockResult(index=block.index, n_tiles=n, seconds=time.perf_counter() - t0,
                       peak=float(bounds[..., 0].max()))
