"""The settings of one explain run (what the CLI options fill in)."""

from __future__ import annotations

from dataclasses import dataclass

from tomocam.errors import InputError
from tomocam.explain.methods import AUTOCAST_DTYPES
from tomocam.store.layout import HEATMAP_DTYPES


@dataclass(frozen=True)
class ExplainConfig:
    """Everything ``tomocam explain`` needs; every field has the CLI option of the same name.

    ``classes`` are names or indices (as strings) of the model's classes, ``None`` for all; ``tile`` and
    ``stride`` are in voxels (defaults: the model's input size and half a tile); ``block`` is the number of
    tiles per block edge (a phase-1 task), shrunk automatically to keep a block within ``block_memory`` bytes.
    ``heatmap_step`` is the spacing in voxels of the stored heatmaps' level 0 (default: the native step,
    :func:`tomocam.store.layout.native_step`; 1: the tomogram's grid); ``heatmap_dtype`` float32 or float16.
    ``chunk`` is the chunk edge of the stored heatmaps (in samples) and of the label image (in voxels).
    """

    tomogram: str
    output: str
    model: str
    layer: str | None = None
    methods: tuple[str, ...] = ("respond",)
    classes: tuple[str, ...] | None = None
    tile: int | None = None
    stride: int | None = None
    batch_size: int | None = None  # None: 32 on a CPU, 256 on a GPU (plan.default_batch_size)
    block: int = 8
    block_memory: int = 512 * 2**20
    device: str = "auto"
    autocast: str | None = None
    invert: bool = False
    voxel_size: float | None = None
    window: str = "cosine"
    chunk: int = 64
    heatmap_step: int | None = None
    heatmap_dtype: str = "float32"
    label_fraction: float = 0.1
    resume: bool = False
    overwrite: bool = False
    command: str = ""

    def validate(self) -> None:
        """Check the settings that need no input file: :class:`InputError` naming the first one out of range."""
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise InputError(f"unknown --autocast '{self.autocast}'; expected one of {', '.join(AUTOCAST_DTYPES)}")
        if self.chunk < 2 or self.chunk % 2:
            raise InputError(f"output chunk size must be even (pyramid level 1 uses half chunks); got {self.chunk}")
        if self.heatmap_dtype not in HEATMAP_DTYPES:
            raise InputError(f"unknown heatmap dtype '{self.heatmap_dtype}'; expected one of "
                             f"{', '.join(HEATMAP_DTYPES)}")
        if self.heatmap_step is not None and self.heatmap_step < 1:
            raise InputError(f"heatmap step must be at least 1 voxel; got {self.heatmap_step}")
