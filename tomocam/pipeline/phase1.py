"""Phase 1: CAMs of every tile, one Dask task per block of tiles.

A task reads its block's voxels in one slab, checks them for NaN/Inf, moves the slab to the device once, cuts and
normalises tiles there batch by batch (:mod:`tomocam.models.inputs`), runs them through :func:`tomocam.compute_cams`
(all classes from one pass) and writes the block's logits, feature-resolution maps and the label method's map
bounds into the chunk (logits, bounds) and chunks (maps, :mod:`tomocam.store.layout`) of the ``tiles/`` arrays
that are the block's own, then sets the block's ``done`` marker. The marker is written last, so a
block is either done (and skipped on ``--resume``) or recomputed in full.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import zarr

from tomocam.explain.methods import AUTOCAST_DTYPES
from tomocam.pipeline.plan import Plan
from tomocam.read import check_finite
from tomocam.store.layout import LABEL_BOUNDS, atomic_writes
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


def block_peak(plan: Plan, block: Block) -> float:
    """The largest value of the label method's maps in ``block``, read back from ``tiles/label_bounds`` (for
    blocks done before a ``--resume``)."""
    return float(np.asarray(tiles_group(plan)[LABEL_BOUNDS][block.grid_slices])[..., 0].max())


def tiles_group(plan: Plan) -> zarr.Group:
    """The store's ``tiles/`` group (opened per call: cheap, and safe in any worker process)."""
    return zarr.open_group(plan.store, mode="r+")["tiles"]


def done_blocks(plan: Plan) -> set[tuple[int, ...]]:
    """Indices of the blocks whose ``done`` marker is set."""
    done = np.asarray(tiles_group(plan)["done"][...])
    return {tuple(int(i) for i in idx) for idx in np.argwhere(done == 1)}


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
            if len(plan.grid.tile) == 3:  # 3-D convolutions run faster channels-last on GPUs and CPUs alike
                model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # not in stubs
            _MODELS[key] = (model, threading.Lock())
        return _MODELS[key]


def explain_block(plan: Plan, block: Block) -> BlockResult:
    """Phase-1 task: CAMs of every tile of ``block``, written into its part of ``tiles/``, then marked done.

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
    slab, origin = read_slab(plan.tomogram.array(), plan.grid, block)
    check_finite(slab, plan.tomogram, origin)
    pin = plan.device.startswith("cuda")
    volume = torch.from_numpy(slab)
    volume = volume.pin_memory().to(plan.device, non_blocking=True) if pin else volume  # (*slab)
    starts = torch.from_numpy(slab_starts(plan.grid, block, origin)).to(plan.device)  # (n, nd), on the device once
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
    tiles = tiles_group(plan)
    region = block.grid_slices
    # The block's chunks are written whole: zarr's check for all-zero (fill-value) chunks, to skip them, would
    # only cost a pass over the maps (measured: 86-203 -> 48-80 ms per 47 MB block).
    whole = {"write_empty_chunks": True}
    bounds = map_bounds(maps[plan.label_method], len(plan.feature_shape)).cpu().numpy()  # (n, k, 2)
    tiles["logits"].with_config(whole)[region] = logits.cpu().numpy().reshape(*block.shape, -1)
    tiles[LABEL_BOUNDS].with_config(whole)[region] = bounds.reshape(*block.shape, *bounds.shape[1:])
    for m in plan.methods:
        tiles[m].with_config(whole)[region] = maps[m].cpu().numpy().reshape(*block.shape, *maps[m].shape[1:])
    with atomic_writes():  # the marker's chunk is whole or absent, whatever kills the run
        done = tiles["done"]
    done[tuple(slice(i, i + 1) for i in block.index)] = 1
    return BlockResult(index=block.index, n_tiles=n, seconds=time.perf_counter() - t0,
                       peak=float(bounds[..., 0].max()))
