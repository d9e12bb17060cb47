"""Reading an explain store: the stored pyramid levels, and any heatmap on the tomogram's grid, lazily.

Layout and sampling: :mod:`tomocam.store.layout`. :meth:`ExplainStore.full_grid` recomputes the full-grid field
from the per-tile maps in ``tiles/`` block by block (:func:`tomocam.stitch.stitch_region`, the operator phase 2
samples), so it is exact whatever level 0's spacing, and no full-grid float volume is ever stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from tomocam.errors import InputError
from tomocam.stitch import stitch_region
from tomocam.store.layout import ATTRS_KEY, HeatmapSampling
from tomocam.store.manifest import manifest_problems
from tomocam.tile import TileGrid

if TYPE_CHECKING:  # imported where used: dask.array costs 1-2 s of every explain worker's start, which never reads
    import dask.array as da


@dataclass
class ExplainStore:
    """A complete explain store opened for reading (see :func:`open_store`)."""

    path: str
    root: zarr.Group

    @property
    def attrs(self) -> dict[str, Any]:
        """The root ``tomocam`` attributes: provenance, settings, timings."""
        return dict(self.root.attrs[ATTRS_KEY])

    @property
    def classes(self) -> list[str]:
        """Class names of the heatmap channels, in channel order."""
        return list(self.attrs["classes"])

    @property
    def methods(self) -> list[str]:
        """CAM methods in the store (``respond``, ``gradcam``)."""
        return list(self.attrs["methods"])

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Level-0 voxel size ``(z, y, x)`` in angstrom."""
        return tuple(self.attrs["input"]["voxel_size"])

    @property
    def input_path(self) -> str:
        """Path of the explained tomogram, as the run recorded it."""
        return str(self.attrs["input"]["path"])

    @property
    def shape(self) -> tuple[int, ...]:
        """The tomogram's shape ``(z, y, x)``."""
        return tuple(int(n) for n in self.attrs["input"]["shape"])

    @property
    def sampling(self) -> HeatmapSampling:
        """Where level 0 of the heatmaps samples the field (step 1: the tomogram's grid)."""
        step = self.attrs.get("sampling", {}).get("step", [1] * len(self.shape))
        return HeatmapSampling(self.shape, tuple(int(s) for s in step))

    @property
    def n_levels(self) -> int:
        """Pyramid levels of the heatmaps."""
        return int(self.attrs["levels"])

    def heatmap(self, method: str = "respond", level: int = 0) -> zarr.Array:
        """The stored heatmaps of ``method`` at pyramid ``level``: ``(c, *samples)`` in score units (float32, or
        float16 when the run asked for it). Level 0 is the field on :attr:`sampling`'s grid; where its samples
        sit in space: :func:`tomocam.store.space.level_space`."""
        self._check_method(method)
        return self._level(method, level)

    def full_grid(self, method: str = "respond", chunk: int = 64) -> da.Array:
        """The heatmaps of ``method`` on the tomogram's grid: a lazy ``(c, z, y, x)`` float32 dask array whose
        ``(1, chunk, chunk, chunk)`` blocks are stitched from ``tiles/`` when computed (exact, any level-0 step
        and dtype); a store without ``tiles/`` whose level 0 has step 1 is read from level 0 itself.

        Raises :class:`InputError` for a coarser store without per-tile maps (one not written by ``tomocam explain``).
        """
        import dask.array as da

        self._check_method(method)
        if f"tiles/{method}" not in self.root:
            if all(s == 1 for s in self.sampling.step):  # level 0 is on the tomogram's grid already
                return da.from_zarr(self.heatmap(method, 0)).astype(np.float32)
            raise InputError(f"store '{self.path}' keeps no per-tile maps of '{method}', so no full-grid heatmaps")
        a = self.attrs
        grid = TileGrid.build(self.shape, tuple(a["tile"]), tuple(a["stride"]))
        tiles = self.root[f"tiles/{method}"]
        k = tiles.shape[len(self.shape)]
        chunks = ((1,) * k, *(_axis_chunks(n, chunk) for n in self.shape))

        def block(block_info=None) -> np.ndarray:
            loc = block_info[None]["array-location"]  # [(c0, c1), (z0, z1), ...]
            c = loc[0][0]
            lo = tuple(a for a, _ in loc[1:])
            hi = tuple(b for _, b in loc[1:])
            ranges = grid.covering(lo, hi)
            starts = [grid.starts[d][r] for d, r in enumerate(ranges)]
            key = (*ranges, slice(c, c + 1))
            maps = np.asarray(tiles[key])  # (*t, 1, *feat)
            shape = tuple(b - a for a, b in zip(lo, hi))
            return stitch_region(lo, shape, starts, maps, grid.tile, a["window"])  # (1, *shape)

        return da.map_blocks(block, chunks=chunks, dtype=np.float32, meta=np.empty((0,) * 4, np.float32))

    def labels(self, level: int = 0) -> zarr.Array:
        """The label image ``(z, y, x)`` on the tomogram's grid, uint8 (uint16 beyond 254 classes): 0 background,
        ``i + 1`` class ``i``."""
        return self._level("labels/segmentation", level)

    @cached_property
    def logits(self) -> zarr.Array:
        """Per-tile logits ``(k, gz, gy, gx)`` for all the model's classes (``attrs['model_classes']``)."""
        return self.root["scores/logits"]

    @property
    def probabilities(self) -> zarr.Array:
        """Per-tile class probabilities ``(k, *tile grid)``."""
        return self.root["scores/probabilities"]

    def _check_method(self, method: str) -> None:
        if method not in self.methods:
            raise InputError(f"store '{self.path}' has no '{method}' heatmaps; it has {', '.join(self.methods)}")

    def _level(self, group: str, level: int) -> zarr.Array:
        n = len(self.root[group].attrs["ome"]["multiscales"][0]["datasets"])
        if not 0 <= level < n:
            raise InputError(f"store '{self.path}' has pyramid levels 0..{n - 1} of '{group}'; asked for {level}")
        return self.root[f"{group}/{level}"]


def _axis_chunks(n: int, chunk: int) -> tuple[int, ...]:
    """Chunk sizes covering ``n`` in steps of ``chunk``."""
    return tuple(min(chunk, n - a) for a in range(0, n, chunk))


def open_store(path: str | Path) -> ExplainStore:
    """Open a complete explain store; :class:`InputError` if ``path`` is not one or its run did not finish."""
    path = Path(path)
    try:
        root = zarr.open_group(str(path), mode="r")
    except (FileNotFoundError, ValueError, KeyError, OSError) as err:
        raise InputError(f"'{path}' is not a zarr store: {err}") from None
    attrs = root.attrs.get(ATTRS_KEY)
    if not isinstance(attrs, dict):
        raise InputError(f"'{path}' is a zarr store but not a tomocam explain store (no '{ATTRS_KEY}' attributes)")
    if attrs.get("complete") is not True:
        raise InputError(
            f"explain store '{path}' is incomplete (its run did not finish); rerun 'tomocam explain' with --resume"
        )
    problems = manifest_problems(root)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(
            f"explain store '{path}' is damaged: {problems[0]}{more}; rerun 'tomocam explain' with --resume "
            f"to rebuild it"
        )
    return ExplainStore(path=str(path), root=root)
