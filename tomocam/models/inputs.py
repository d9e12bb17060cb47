"""Model-input preparation: the one path from voxels to what a checkpoint's model takes.

cut (tiles of a volume, one gather) -> resample to the model's input grid -> invert contrast if asked -> normalise
as the checkpoint says. Pure tensor code on whatever device the volume is on: on a GPU the volume goes to the
device once and every step runs there; the tests run the same code on CPU tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from tomocam.models.normalisation import normalise_


@dataclass(frozen=True)
class InputSpec:
    """How raw tiles become model inputs: ``tile`` voxels per axis resampled to ``size`` (the model's input
    grid), contrast inverted when ``invert``, then ``normalisation`` (:data:`tomocam.models.NORMALISATIONS`)."""

    tile: tuple[int, ...]
    size: tuple[int, ...]
    normalisation: str
    invert: bool = False


def tile_for_model(input_size: int, model_voxel: float, tomogram_voxel: Sequence[float]) -> tuple[int, ...]:
    """The tile, in tomogram voxels per axis, that covers a model input of ``input_size`` voxels at
    ``model_voxel`` angstrom in a tomogram of ``tomogram_voxel`` (per axis) angstrom."""
    return tuple(max(1, round(input_size * (model_voxel / v))) for v in tomogram_voxel)


def model_input_for(tile: Sequence[int], model_voxel: float, tomogram_voxel: Sequence[float]) -> tuple[int, ...]:
    """The model-input size a ``tile`` of tomogram voxels is resampled to: the same extent at ``model_voxel``."""
    return tuple(max(1, round(t / (model_voxel / v))) for t, v in zip(tile, tomogram_voxel))


def cut_tiles(volume: Tensor, starts: Tensor | Sequence[Sequence[int]], tile: Sequence[int]) -> Tensor:
    """Tiles of ``volume`` ``(*s)`` starting at ``starts`` ``(n, nd)`` (voxel indices into ``volume``):
    ``(n, *tile)`` on ``volume``'s device, a copy.

    The copy is made the way that is fastest on the volume's device: on a GPU one gather kernel
    (:func:`gather_tiles`), where stacking ``n`` sliced views costs ``n`` Python-level slices and kernel launches
    of host time per batch; on a CPU the sliced views stacked (:func:`stack_tiles`), each a run of contiguous rows,
    where the gather indexes voxel by voxel (docs/architecture.md, "Design decisions"). Both give the same tiles.
    """
    return stack_tiles(volume, starts, tile) if volume.device.type == "cpu" else gather_tiles(volume, starts, tile)


def gather_tiles(volume: Tensor, starts: Tensor | Sequence[Sequence[int]], tile: Sequence[int]) -> Tensor:
    """:func:`cut_tiles` as one indexing copy: ``volume.unfold`` along every axis with step 1 is a view holding a
    tile at every start position, and indexing it with the starts gathers the batch in one kernel. Give ``starts``
    as a tensor on the volume's device to spare a host-to-device copy per call."""
    view = volume
    for d, t in enumerate(tile):
        view = view.unfold(d, t, 1)  # (*(s - tile + 1), *tile)
    index = torch.as_tensor(starts, dtype=torch.long, device=volume.device).reshape(-1, len(tile))  # (n, nd)
    return view[tuple(index.T)]


def stack_tiles(volume: Tensor, starts: Tensor | Sequence[Sequence[int]], tile: Sequence[int]) -> Tensor:
    """:func:`cut_tiles` as the sliced views of ``volume`` stacked: ``(n, *tile)``."""
    rows = starts.tolist() if isinstance(starts, Tensor) else starts
    return torch.stack([volume[tuple(slice(a, a + t) for a, t in zip(row, tile))] for row in rows])


def resample(x: Tensor, size: Sequence[int]) -> Tensor:
    """Resample ``(n, 1, *tile)`` to the model's grid ``(n, 1, *size)``.

    Finer tomograms are binned (area averaging: exact voxel means for integer factors), coarser ones
    interpolated (trilinear), so that a tile shows the model what it saw in training at its own voxel size.
    """
    size = tuple(size)
    if tuple(x.shape[2:]) == size:
        return x
    if all(t >= s for t, s in zip(x.shape[2:], size)):
        return F.interpolate(x, size=size, mode="area")  # adaptive average pooling, 2-D or 3-D
    return F.interpolate(x, size=size, mode="trilinear" if x.dim() == 5 else "bilinear", align_corners=False)


def prepare(tiles: Tensor, spec: InputSpec) -> Tensor:
    """Raw tiles ``(n, *tile)`` -> model inputs ``(n, 1, *spec.size)`` float32, on the tiles' device; ``tiles`` is
    left as it is (one float32 copy is made first)."""
    return _prepare_(tiles.to(torch.float32, copy=True).unsqueeze(1), spec)


def model_inputs(volume: Tensor, starts: Tensor | Sequence[Sequence[int]], spec: InputSpec) -> Tensor:
    """Cut, resample, invert and normalise: ``(n, 1, *spec.size)`` model inputs from ``volume`` at ``starts``.

    The gathered tiles are the batch's one copy (of a float32 volume); inverting and normalising work in place.
    """
    return _prepare_(cut_tiles(volume, starts, spec.tile).float().unsqueeze(1), spec)


def _prepare_(x: Tensor, spec: InputSpec) -> Tensor:
    """Resample, invert and normalise ``(n, 1, *tile)`` float32 tiles that the caller owns, in place where the
    shape allows: ``(n, 1, *spec.size)``."""
    x = resample(x, spec.size)  # (n, 1, *size)
    if spec.invert:
        x.neg_()
    return normalise_(x, spec.normalisation)
