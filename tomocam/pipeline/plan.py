"""The plan of a run, from headers and shapes alone: input, model, tile grid, blocks, output chunks.

:func:`make_plan` opens the tomogram header and the model, resolves layer, classes and device, probes the
layer's output shape with one zero tile (which also rejects unknown layers and tiles the model cannot take),
and sizes the blocks. The :class:`Plan` is small and picklable: it is what every Dask task receives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomocam.classes import class_indices
from tomocam.device import one_torch_thread, worker_device
from tomocam.errors import InputError, LayerError
from tomocam.explain.methods import AUTOCAST_DTYPES
from tomocam.models.inputs import InputSpec, prepare
from tomocam.pipeline.config import ExplainConfig
from tomocam.read import Tomogram, open_tomogram
from tomocam.store.layout import HEATMAP_DTYPES, Sampling, native_step
from tomocam.tile import Block, TileGrid, make_blocks, release_pages


@dataclass(frozen=True)
class Plan:
    """What every task needs to know (picklable). Shapes are ``(z, y, x)``; ``k`` = explained classes."""

    tomogram: Tomogram
    grid: TileGrid
    block: tuple[int, ...]
    store: str
    model_path: str
    model_sha256: str
    layer: str
    methods: tuple[str, ...]
    class_indices: tuple[int, ...]
    class_names: tuple[str, ...]
    model_classes: tuple[str, ...]
    feature_shape: tuple[int, ...]
    model_input: tuple[int, ...]
    normalisation: str
    invert: bool
    batch_size: int
    device: str
    autocast: str | None
    window: str
    chunk: int
    sampling: Sampling
    heatmap_dtype: str
    torch_threads: int | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def label_method(self) -> str:
        """The method whose heatmaps make the label image: Respond-CAM when computed."""
        return "respond" if "respond" in self.methods else self.methods[0]

    @property
    def input_spec(self) -> InputSpec:
        """How this run's tiles become model inputs."""
        return InputSpec(self.grid.tile, self.model_input, self.normalisation, self.invert)

    @property
    def blocks(self) -> list[Block]:
        """Phase-1 tasks: boxes of tiles, in C order of block index."""
        return make_blocks(self.grid, self.block)

    @property
    def block_grid(self) -> tuple[int, ...]:
        """Number of blocks per axis."""
        return tuple(math.ceil(g / b) for g, b in zip(self.grid.grid_shape, self.block))

    @property
    def chunk_grid(self) -> tuple[int, ...]:
        """Number of level-0 heatmap chunks per spatial axis (a phase-2 task each)."""
        return tuple(math.ceil(n / self.chunk) for n in self.sampling.sample_shape)

    def chunk_box(self, index: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Sample box ``[lo, hi)`` of level-0 heatmap chunk ``index``."""
        lo = tuple(i * self.chunk for i in index)
        hi = tuple(min(a + self.chunk, n) for a, n in zip(lo, self.sampling.sample_shape))
        return lo, hi

    def describe(self) -> str:
        """A dry-run description of the plan."""
        nb = int(np.prod(self.block_grid))
        return "\n".join(
            [
                f"input   {self.tomogram.path}: {self.tomogram.shape} (z, y, x) {self.tomogram.dtype}, "
                f"voxel {self.tomogram.voxel_size} A",
                f"tiles   {self.grid.describe()}",
                f"blocks  {' x '.join(map(str, self.block_grid))} = {nb} blocks of up to "
                f"{' x '.join(map(str, self.block))} tiles",
                f"model   {self.model_path} (layer {self.layer}, feature maps {self.feature_shape}), "
                f"methods {', '.join(self.methods)}, {len(self.class_indices)} classes",
                f"device  {self.device}, batch {self.batch_size}"
                + (f", autocast {self.autocast}" if self.autocast else ""),
                f"output  {self.store}: heatmaps every {'x'.join(map(str, self.sampling.step))} voxels "
                f"{self.sampling.sample_shape} {self.heatmap_dtype}, chunks {self.chunk}^3, "
                f"{int(np.prod(self.chunk_grid))} chunks per class",
            ]
        )


def polarity_skew(volume: np.ndarray, max_samples: int = 2_000_000) -> float:
    """Skewness of a strided sample of ``volume``: positive when sparse features are brighter than background."""
    step = max(1, math.ceil((np.prod(volume.shape) / max_samples) ** (1 / volume.ndim)))
    sample = np.asarray(volume[tuple(slice(None, None, step) for _ in volume.shape)], dtype=np.float64)
    release_pages(volume)
    sample = sample[np.isfinite(sample)]
    sd = sample.std()
    return float(((sample - sample.mean()) ** 3).mean() / sd**3) if sd > 0 else 0.0


def block_edge(requested: int, grid: TileGrid, per_tile_out: int, budget: int) -> int:
    """Largest block edge <= ``requested`` (at least 1) whose phase-1 task fits ``budget`` bytes: its float32 slab,
    its results (``per_tile_out`` bytes a tile) and the two copies of them that zarr may make while encoding the
    block's chunks (measured with tracemalloc: 90 MiB for 45 MiB of maps)."""
    nd = len(grid.tile)
    for edge in range(max(1, requested), 1, -1):
        slab = 4 * math.prod(min((edge - 1) * s + t, n) for s, t, n in zip(grid.stride, grid.tile, grid.shape))
        if slab + 3 * edge**nd * per_tile_out <= budget:
            return edge
    return 1


def default_batch_size(device: str) -> int:
    """Tiles per forward pass when none is asked for: 256 on a GPU, 32 on a CPU.

    On an H200 the all-class CAM pass of CNN-2 costs 1.1-1.2x a forward pass at batch 256 but 1.7-3x at 64
    (launch-bound; docs/gpu.md); on a CPU 32 tiles already keep the cores busy.
    """
    return 256 if device.startswith("cuda") else 32


def make_plan(config: ExplainConfig, store: str, torch_threads: int | None = None) -> Plan:
    """Check the inputs and settings of ``config`` and return the run's :class:`Plan` (no voxels read but a
    sparse sample for the polarity check)."""
    import torch

    from tomocam import compute_cams
    from tomocam.models import load_checkpoint

    tomo = open_tomogram(config.tomogram, voxel_size=config.voxel_size)
    with one_torch_thread():  # copying the weights in is parallel: no OpenMP team here (see below)
        model, meta = load_checkpoint(config.model, device="cpu")
    layer = config.layer or meta.cam_layer or getattr(model, "default_cam_layer", "")
    if not layer:
        raise LayerError(f"model '{config.model}' names no default layer; choose one with --layer")
    methods = tuple(dict.fromkeys(config.methods))
    indices = class_indices(config.classes, meta.classes)
    # Tiles cover the model's field of view in angstrom: at another voxel size they are resampled to the
    # model's input grid (binned when the tomogram is finer), and the heatmaps land on the tomogram's own grid.
    ratio = tuple(meta.voxel_size / v for v in tomo.voxel_size)  # tomogram voxels per model voxel, (z, y, x)
    tile = config.tile or tuple(max(1, round(meta.input_size * r)) for r in ratio)
    grid = TileGrid.build(tomo.shape, tile, config.stride)
    model_input = tuple(max(1, round(t / r)) for t, r in zip(grid.tile, ratio))
    spec = InputSpec(grid.tile, model_input, meta.normalisation, config.invert)
    try:
        with torch.no_grad(), one_torch_thread():  # no second OpenMP team beside an in-process worker's
            probe = prepare(torch.zeros((1, *grid.tile)), spec)  # (1, 1, *model_input)
            result = compute_cams(model, probe, layer, methods=methods)
    except RuntimeError as err:
        raise InputError(
            f"model '{config.model}' cannot take inputs of {model_input} voxels (it was trained on "
            f"{meta.input_size}^3): {str(err).splitlines()[0]}"
        ) from None
    feature_shape = tuple(result.maps[methods[0]].shape[2:])
    per_tile_out = 4 * (len(meta.classes) + len(indices) * int(np.prod(feature_shape)) * len(methods))
    edge = block_edge(config.block, grid, per_tile_out, config.block_memory)
    warnings = []
    if model_input != grid.tile:
        warnings.append(
            f"the tomogram's voxel size {'x'.join(f'{v:.3g}' for v in tomo.voxel_size)} A differs from the model's "
            f"{meta.voxel_size:.3g} A: tiles of {'x'.join(map(str, grid.tile))} voxels are resampled to the model's "
            f"{'x'.join(map(str, model_input))} (heatmaps stay on the tomogram's grid)"
        )
    skew = polarity_skew(tomo.array())
    bright = skew > 0
    expect_bright = (meta.polarity == "bright") != config.invert
    if abs(skew) > 0.1 and bright != expect_bright:
        warnings.append(
            f"the tomogram looks {'bright' if bright else 'dark'}-on-background (skewness {skew:+.2f}) but the model "
            f"expects {meta.polarity} particles" + (" and --invert is set" if config.invert else "; consider --invert")
        )
    if config.autocast is not None and config.autocast not in AUTOCAST_DTYPES:
        raise InputError(f"unknown --autocast '{config.autocast}'; expected one of {', '.join(AUTOCAST_DTYPES)}")
    if config.chunk < 2 or config.chunk % 2:
        raise InputError(f"output chunk size must be even (pyramid level 1 uses half chunks); got {config.chunk}")
    if config.heatmap_dtype not in HEATMAP_DTYPES:
        raise InputError(f"unknown heatmap dtype '{config.heatmap_dtype}'; expected one of {', '.join(HEATMAP_DTYPES)}")
    if config.heatmap_step is not None and config.heatmap_step < 1:
        raise InputError(f"heatmap step must be at least 1 voxel; got {config.heatmap_step}")
    step = tuple(
        config.heatmap_step or native_step(t, s, f) for t, s, f in zip(grid.tile, grid.stride, feature_shape)
    )
    return Plan(
        tomogram=tomo,
        grid=grid,
        block=(edge,) * len(grid.tile),
        store=store,
        model_path=str(Path(config.model).absolute()),
        model_sha256=meta.sha256,
        layer=layer,
        methods=methods,
        class_indices=indices,
        class_names=tuple(meta.classes[i] for i in indices),
        model_classes=tuple(meta.classes),
        feature_shape=feature_shape,
        model_input=model_input,
        normalisation=meta.normalisation,
        invert=config.invert,
        batch_size=max(1, config.batch_size or default_batch_size(worker_device(config.device))),
        device=worker_device(config.device),
        autocast=config.autocast,
        window=config.window,
        chunk=config.chunk,
        sampling=Sampling(tomo.shape, step),
        heatmap_dtype=config.heatmap_dtype,
        torch_threads=torch_threads,
        warnings=tuple(warnings),
    )
