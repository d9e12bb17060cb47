"""Phase 1: CAMs of every tile, one Dask task per block of tiles.

A task reads its block's voxels in one slab, checks them for NaN/Inf, cuts and normalises tiles batch by batch
(the next batch is prepared on a thread while the model runs), runs them through :func:`tomocam.compute_cams`
(all classes from one pass) and writes the block's logits and feature-resolution maps into the chunk of the
``tiles/`` arrays that is the block's own, then sets the block's ``done`` marker. The marker is written last,
so a block is either done (and skipped on ``--resume``) or recomputed in full.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import zarr

from tomocam.explain.methods import AUTOCAST_DTYPES
from tomocam.pipeline.plan import Plan
from tomocam.read import check_finite
from tomocam.tile import Block, cut_tiles, read_slab

_MODELS: dict[tuple, object] = {}
_MODELS_LOCK = threading.Lock()


@dataclass(frozen=True)
class BlockResult:
    """What a phase-1 task returns: its block index, tile count and seconds spent."""

    index: tuple[int, ...]
    n_tiles: int
    seconds: float


def tiles_group(plan: Plan) -> zarr.Group:
    """The store's ``tiles/`` group (opened per call: cheap, and safe in any worker process)."""
    return zarr.open_group(plan.store, mode="r+")["tiles"]


def create_tiles_arrays(root: zarr.Group, plan: Plan) -> None:
    """Create ``tiles/``: ``logits (gz, gy, gx, K)``, ``<method> (gz, gy, gx, k, *feat)``, ``done`` per block.

    Chunks are one block on the grid axes, so each block writes exactly its own chunk.
    """
    grid, block = plan.grid.grid_shape, plan.block
    tiles = root.create_group("tiles")
    k_all, k = len(plan.model_classes), len(plan.class_indices)
    tiles.create_array("logits", shape=(*grid, k_all), chunks=(*block, k_all), dtype="float32", fill_value=0.0)
    for method in plan.methods:
        shape = (*grid, k, *plan.feature_shape)
        tiles.create_array(method, shape=shape, chunks=(*block, k, *plan.feature_shape), dtype="float32", fill_value=0.0)
    tiles.create_array("done", shape=plan.block_grid, chunks=(1,) * len(block), dtype="uint8", fill_value=0)


def done_blocks(plan: Plan) -> set[tuple[int, ...]]:
    """Indices of the blocks whose ``done`` marker is set."""
    done = np.asarray(tiles_group(plan)["done"][...])
    return {tuple(int(i) for i in idx) for idx in np.argwhere(done == 1)}


def _model(plan: Plan):
    """The model for this worker thread, loaded once (keyed by file hash and device)."""
    import torch

    from tomocam.models import load_checkpoint

    key = (plan.model_path, plan.model_sha256, plan.device, threading.get_ident())
    with _MODELS_LOCK:
        if key not in _MODELS:
            if plan.torch_threads:
                torch.set_num_threads(plan.torch_threads)
            model, _ = load_checkpoint(plan.model_path, device=plan.device)
            if plan.device.startswith("cuda") and len(plan.grid.tile) == 3:
                model = model.to(memory_format=torch.channels_last_3d)
            _MODELS[key] = model
        return _MODELS[key]


def resample_tiles(x, size: tuple[int, ...]):
    """Resample tiles ``(n, 1, *tile)`` to the model's input grid ``(n, 1, *size)``.

    Finer tomograms are binned (area averaging: exact voxel means for integer factors), coarser ones
    interpolated (trilinear), so that a tile shows the model what it saw in training at its own voxel size.
    """
    from torch.nn import functional as F

    if tuple(x.shape[2:]) == tuple(size):
        return x
    x = x.float()
    if all(t >= s for t, s in zip(x.shape[2:], size)):
        return F.adaptive_avg_pool3d(x, size) if x.dim() == 5 else F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="trilinear" if x.dim() == 5 else "bilinear", align_corners=False)


def _batches(plan: Plan, slab: np.ndarray, origin: tuple[int, ...], indices: list[tuple[int, ...]]):
    """Yield normalised input batches ``(n, 1, *tile)`` on the device, preparing the next one in a thread."""
    import torch

    from tomocam.models import normalise

    pin = plan.device.startswith("cuda")

    def prepare(start: int):
        tiles = cut_tiles(slab, origin, plan.grid, indices[start : start + plan.batch_size])  # (n, *tile)
        x = torch.from_numpy(tiles).unsqueeze(1)  # (n, 1, *tile)
        x = resample_tiles(x, plan.model_input)  # (n, 1, *model_input)
        if plan.invert:
            x = -x
        x = normalise(x, plan.normalisation)
        return x.pin_memory() if pin else x

    starts = list(range(0, len(indices), plan.batch_size))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(prepare, starts[0])
        for i in range(len(starts)):
            x = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(prepare, starts[i + 1])
            yield x.to(plan.device, non_blocking=pin)


def explain_block(plan: Plan, block: Block) -> BlockResult:
    """Phase-1 task: CAMs of every tile of ``block``, written into its chunk of ``tiles/``, then marked done."""
    import torch

    from tomocam import compute_cams

    t0 = time.perf_counter()
    model = _model(plan)
    slab, origin = read_slab(plan.tomogram.array(), plan.grid, block)
    check_finite(slab, plan.tomogram, origin)
    indices = block.indices()
    autocast = getattr(torch, AUTOCAST_DTYPES[plan.autocast]) if plan.autocast else None
    logits, maps = [], {m: [] for m in plan.methods}
    for x in _batches(plan, slab, origin, indices):
        with torch.no_grad():
            result = compute_cams(model, x, plan.layer, methods=plan.methods, autocast=autocast)
        logits.append(result.logits.cpu().numpy())  # (n, K)
        select = torch.tensor(plan.class_indices, device=x.device)
        for m in plan.methods:
            maps[m].append(result.maps[m].index_select(1, select).cpu().numpy())  # (n, k, *feat)
    tiles = tiles_group(plan)
    region = block.grid_slices
    tiles["logits"][region] = np.concatenate(logits).reshape(*block.shape, -1)
    for m in plan.methods:
        tiles[m][region] = np.concatenate(maps[m]).reshape(*block.shape, *maps[m][0].shape[1:])
    tiles["done"][tuple(slice(i, i + 1) for i in block.index)] = 1
    return BlockResult(index=block.index, n_tiles=block.n_tiles, seconds=time.perf_counter() - t0)
