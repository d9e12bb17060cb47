"""The plan of a run, from headers and shapes alone: input, model, tile grid, blocks, output chunks.

:func:`make_plan` opens the tomogram header and the model, resolves layer, classes and device, probes the
layer's output shape with one zero tile (which also rejects unknown layers and tiles the model cannot take),
and sizes the blocks. The :class:`Plan` is small and picklable: it is what every Dask task receives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tomocam.classes import class_indices
from tomocam.device import local_worker_device, one_torch_thread
from tomocam.errors import InputError, LayerError
from tomocam.models.inputs import InputSpec, model_input_for, prepare, tile_for_model
from tomocam.pipeline.config import ExplainConfig
from tomocam.read import Tomogram, open_tomogram
from tomocam.store.layout import HeatmapSampling, native_step
from tomocam.store.spec import StoreSpec
from tomocam.tile import Block, TileGrid, make_blocks, release_pages

if TYPE_CHECKING:
    from tomocam.models.checkpoint import ModelMeta


@dataclass(frozen=True)
class Plan:
    """What every task needs to know (picklable). Shapes are ``(z, y, x)``; ``k`` = explained classes."""

    tomogram: Tomogram
    tile_grid: TileGrid
    block: tuple[int, ...]
    output: str
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
    sampling: HeatmapSampling
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
        return InputSpec(self.tile_grid.tile, self.model_input, self.normalisation, self.invert)

    @property
    def store_spec(self) -> StoreSpec:
        """What this run's store at :attr:`output` holds (what :class:`tomocam.store.writer.StoreWriter` needs)."""
        t = self.tomogram
        return StoreSpec(
            path=self.output, input_path=t.path, shape=t.shape, voxel_size=t.voxel_size, input_dtype=t.dtype,
            tile_grid=self.tile_grid, block=self.block, methods=self.methods, class_indices=self.class_indices,
            class_names=self.class_names, model_classes=self.model_classes, feature_shape=self.feature_shape,
            chunk=self.chunk, sampling=self.sampling, heatmap_dtype=self.heatmap_dtype, model_path=self.model_path,
            model_sha256=self.model_sha256, layer=self.layer, model_input=self.model_input,
            normalisation=self.normalisation, invert=self.invert, window=self.window, autocast=self.autocast,
        )

    @property
    def blocks(self) -> list[Block]:
        """Phase-1 tasks: boxes of tiles, in C order of block index."""
        return make_blocks(self.tile_grid, self.block)

    @property
    def block_grid(self) -> tuple[int, ...]:
        """Number of blocks per axis."""
        return tuple(math.ceil(g / b) for g, b in zip(self.tile_grid.grid_shape, self.block))

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
                f"tiles   {self.tile_grid.describe()}",
                f"blocks  {' x '.join(map(str, self.block_grid))} = {nb} blocks of up to "
                f"{' x '.join(map(str, self.block))} tiles",
                f"model   {self.model_path} (layer {self.layer}, feature maps {self.feature_shape}), "
                f"methods {', '.join(self.methods)}, {len(self.class_indices)} classes",
                f"device  {self.device}, batch {self.batch_size}"
                + (f", autocast {self.autocast}" if self.autocast else ""),
                f"output  {self.output}: heatmaps every {'x'.join(map(str, self.sampling.step))} voxels "
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
    block's chunks."""
    nd = len(grid.tile)
    for edge in range(max(1, requested), 1, -1):
        slab = 4 * math.prod(min((edge - 1) * s + t, n) for s, t, n in zip(grid.stride, grid.tile, grid.shape))
        if slab + 3 * edge**nd * per_tile_out <= budget:
            return edge
    return 1


def default_batch_size(device: str) -> int:
    """Tiles per forward pass when none is asked for: 256 on a GPU, 32 on a CPU.

    On a GPU smaller batches leave the all-class CAM pass launch-bound; on a CPU 32 tiles already keep the cores
    busy (measured: docs/architecture.md, "Design decisions").
    """
    return 256 if device.startswith("cuda") else 32


@dataclass(frozen=True)
class OpenedInputs:
    """A run's inputs, opened: the tomogram (header only), the model on the CPU and its metadata, and what they
    resolve: the CAM layer, methods, explained class indices, the tile grid and the model's input grid."""

    tomogram: Tomogram
    model: Any  # torch.nn.Module
    meta: ModelMeta
    layer: str
    methods: tuple[str, ...]
    class_indices: tuple[int, ...]
    tile_grid: TileGrid
    model_input: tuple[int, ...]

    def input_spec(self, invert: bool) -> InputSpec:
        """How the tiles become model inputs."""
        return InputSpec(self.tile_grid.tile, self.model_input, self.meta.normalisation, invert)


def open_inputs(config: ExplainConfig) -> OpenedInputs:
    """Open the tomogram's header and the model, and resolve layer, methods, classes and the tile grid.

    Tiles cover the model's field of view in angstrom: at another voxel size they are resampled to the model's
    input grid (binned when the tomogram is finer), and the heatmaps land on the tomogram's own grid.
    """
    from tomocam.models import load_checkpoint

    tomo = open_tomogram(config.tomogram, voxel_size=config.voxel_size)
    with one_torch_thread():  # copying the weights in is parallel: no OpenMP team here (see probe_feature_shape)
        model, meta = load_checkpoint(config.model, device="cpu")
    layer = config.layer or meta.cam_layer or getattr(model, "default_cam_layer", "")
    if not layer:
        raise LayerError(f"model '{config.model}' names no default layer; choose one with --layer")
    tile = config.tile or tile_for_model(meta.input_size, meta.voxel_size, tomo.voxel_size)
    grid = TileGrid.build(tomo.shape, tile, config.stride)
    model_input = model_input_for(grid.tile, meta.voxel_size, tomo.voxel_size)
    return OpenedInputs(tomo, model, meta, layer, tuple(dict.fromkeys(config.methods)),
                        class_indices(config.classes, meta.classes), grid, model_input)


def probe_feature_shape(config: ExplainConfig, inputs: OpenedInputs) -> tuple[int, ...]:
    """The shape of the layer's maps for one tile, from one zero tile through the model; :class:`InputError`
    when the model cannot take the tiles (an unknown layer is a :class:`LayerError` of the CAM pass)."""
    import torch

    from tomocam import compute_cams

    try:
        with torch.no_grad(), one_torch_thread():  # no second OpenMP team beside an in-process worker's
            probe = prepare(torch.zeros((1, *inputs.tile_grid.tile)), inputs.input_spec(config.invert))
            result = compute_cams(inputs.model, probe, inputs.layer, methods=inputs.methods)  # probe (1, 1, *input)
    except RuntimeError as err:
        raise InputError(
            f"model '{config.model}' cannot take inputs of {inputs.model_input} voxels (it was trained on "
            f"{inputs.meta.input_size}^3): {str(err).splitlines()[0]}"
        ) from None
    return tuple(result.maps[inputs.methods[0]].shape[2:])


def input_warnings(config: ExplainConfig, inputs: OpenedInputs) -> list[str]:
    """What the user should know before the run: tiles resampled to the model's voxel size, and a tomogram whose
    contrast (skewness of a sparse sample of voxels) is the opposite of the model's particles."""
    tomo, meta, grid = inputs.tomogram, inputs.meta, inputs.tile_grid
    warnings = []
    if inputs.model_input != grid.tile:
        warnings.append(
            f"the tomogram's voxel size {'x'.join(f'{v:.3g}' for v in tomo.voxel_size)} A differs from the model's "
            f"{meta.voxel_size:.3g} A: tiles of {'x'.join(map(str, grid.tile))} voxels are resampled to the model's "
            f"{'x'.join(map(str, inputs.model_input))} (heatmaps stay on the tomogram's grid)"
        )
    skew = polarity_skew(tomo.array())
    bright = skew > 0
    expect_bright = (meta.polarity == "bright") != config.invert
    if abs(skew) > 0.1 and bright != expect_bright:
        warnings.append(
            f"the tomogram looks {'bright' if bright else 'dark'}-on-background (skewness {skew:+.2f}) but the model "
            f"expects {meta.polarity} particles" + (" and --invert is set" if config.invert else "; consider --invert")
        )
    return warnings


def make_plan(config: ExplainConfig, output: str, torch_threads: int | None = None) -> Plan:
    """Check the inputs and settings of ``config`` and return the run's :class:`Plan` writing to ``output`` (no
    voxels read but a sparse sample for the polarity check)."""
    inputs = open_inputs(config)
    feature_shape = probe_feature_shape(config, inputs)
    config.validate()
    grid, meta, indices = inputs.tile_grid, inputs.meta, inputs.class_indices
    per_tile_out = 4 * (len(meta.classes) + len(indices) * int(np.prod(feature_shape)) * len(inputs.methods))
    edge = block_edge(config.block, grid, per_tile_out, config.block_memory)
    step = tuple(
        config.heatmap_step or native_step(t, s, f) for t, s, f in zip(grid.tile, grid.stride, feature_shape)
    )
    device = local_worker_device(config.device)
    return Plan(
        tomogram=inputs.tomogram,
        tile_grid=grid,
        block=(edge,) * len(grid.tile),
        output=output,
        model_path=str(Path(config.model).absolute()),
        model_sha256=meta.sha256,
        layer=inputs.layer,
        methods=inputs.methods,
        class_indices=indices,
        class_names=tuple(meta.classes[i] for i in indices),
        model_classes=tuple(meta.classes),
        feature_shape=feature_shape,
        model_input=inputs.model_input,
        normalisation=meta.normalisation,
        invert=config.invert,
        batch_size=max(1, config.batch_size or default_batch_size(device)),
        device=device,
        autocast=config.autocast,
        window=config.window,
        chunk=config.chunk,
        sampling=HeatmapSampling(inputs.tomogram.shape, step),
        heatmap_dtype=config.heatmap_dtype,
        torch_threads=torch_threads,
        warnings=tuple(input_warnings(config, inputs)),
    )
