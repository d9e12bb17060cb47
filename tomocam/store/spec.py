"""What an explain store holds, in store terms: the small, picklable description the writer is opened from.

The pipeline's plan builds one (:attr:`tomocam.pipeline.plan.Plan.store_spec`); everything in ``store/`` that
writes (:mod:`.create`, :mod:`.writer`) reads only this, so the store imports no pipeline type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tomocam.store.layout import HeatmapSampling
from tomocam.tile import TileGrid


@dataclass(frozen=True)
class StoreSpec:
    """The store at ``path`` of one explained tomogram. Shapes are ``(z, y, x)``; ``k`` = explained classes.

    Layout: the tomogram's ``shape`` and ``voxel_size`` (angstrom), its ``tile_grid`` and phase-1 ``block`` (tiles
    per block edge), the CAM ``methods``, the ``class_names`` explained (``class_indices`` among the
    ``model_classes``), each tile map's ``feature_shape``, the heatmaps' ``chunk`` edge, ``sampling`` and
    ``heatmap_dtype``. Provenance (recorded, and compared on ``--resume``): the input file and dtype, the model
    file and digest, its ``layer``, ``model_input`` grid, ``normalisation``, ``invert``, the stitching
    ``window`` and ``autocast``.
    """

    path: str
    input_path: str
    shape: tuple[int, ...]
    voxel_size: tuple[float, ...]
    input_dtype: str
    tile_grid: TileGrid
    block: tuple[int, ...]
    methods: tuple[str, ...]
    class_indices: tuple[int, ...]
    class_names: tuple[str, ...]
    model_classes: tuple[str, ...]
    feature_shape: tuple[int, ...]
    chunk: int
    sampling: HeatmapSampling
    heatmap_dtype: str
    model_path: str
    model_sha256: str
    layer: str
    model_input: tuple[int, ...]
    normalisation: str
    invert: bool
    window: str
    autocast: str | None

    @property
    def label_method(self) -> str:
        """The method whose heatmaps make the label image: Respond-CAM when computed."""
        return "respond" if "respond" in self.methods else self.methods[0]

    @property
    def block_grid(self) -> tuple[int, ...]:
        """Number of phase-1 blocks per axis."""
        return tuple(math.ceil(g / b) for g, b in zip(self.tile_grid.grid_shape, self.block))
