"""The paper's Fig. 3 and Fig. 4 for one subtomogram and a model.

Fig. 3: the subtomogram and its Respond-CAM and Grad-CAM (at the model's CAM layer, for one class) as
isosurfaces seen in parallel projection (marching cubes), and the same volumes as central slices, the heatmaps
overlaid in score units. Fig. 4: the Respond-CAM of every convolution and pooling layer before the fully
connected part, the same way. Maps come from :func:`tomocam.compute_cams` and are brought to the input grid
with :func:`tomocam.resize_maps`, which keeps each map's sum (titles show the sum next to the class score:
the sum-to-score property).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d import Axes3D
from torch import nn

from tomocam.classes import class_indices
from tomocam.errors import InputError
from tomocam.explain.methods import METHOD_TITLES
from tomocam.render.overlay import Extent, draw_overlay, extent, symmetric_limit

#: Layers shown in Fig. 4: everything before the fully connected part that changes the feature maps.
FIG4_LAYER_TYPES = (nn.Conv2d, nn.Conv3d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool2d, nn.AvgPool3d)
#: Isosurface level of a heatmap, as a fraction of its largest |value|.
HEAT_ISO_FRACTION = 0.5
#: Isosurface level of the subtomogram, in standard deviations above its mean (after polarity).
VOLUME_ISO_SIGMA = 1.5


@dataclass(frozen=True)
class Explanation:
    """CAMs of one subtomogram for one class, on the input grid.

    ``volume``: `(d, h, w)` as read; ``maps``: method -> `(d, h, w)` score units; ``score``: the class logit;
    ``probability``: its softmax probability; ``layer``: the explained layer.
    """

    volume: np.ndarray
    maps: dict[str, np.ndarray]
    class_name: str
    score: float
    probability: float
    layer: str


def read_subtomogram(path: Path, input_size: int) -> np.ndarray:
    """A cubic MRC subtomogram `(s, s, s)` float32 of the model's input size; :class:`InputError` otherwise."""
    import mrcfile

    try:
        with mrcfile.open(path, permissive=False) as mrc:
            data = np.array(mrc.data, dtype=np.float32)  # a writable copy
    except (ValueError, OSError) as err:
        raise InputError(f"subtomogram '{path}' cannot be read as an MRC file: {str(err).splitlines()[0]}") from None
    if data.shape != (input_size,) * 3:
        raise InputError(f"subtomogram '{path}' has shape {data.shape}; the model expects {(input_size,) * 3}")
    if not np.isfinite(data).all():
        raise InputError(f"subtomogram '{path}' contains NaN or Inf voxels")
    return data


def _prepare(volume: np.ndarray, meta) -> torch.Tensor:
    """`(d, h, w)` -> the model's input `(1, 1, d, h, w)`: normalised as the checkpoint records."""
    from tomocam.models import normalise

    return normalise(torch.tensor(volume, dtype=torch.float32)[None, None], meta.normalisation)


def _class_index(meta, class_name: str | None, logits: torch.Tensor) -> int:
    """Index of ``class_name`` (a name or an index) among the model's classes; the predicted class when None."""
    return int(logits.argmax()) if class_name is None else class_indices([class_name], meta.classes)[0]


def explain_subtomogram(
    model: nn.Module,
    meta,
    volume: np.ndarray,
    *,
    layer: str | None = None,
    class_name: str | None = None,
    methods: Sequence[str] = ("respond", "gradcam"),
) -> Explanation:
    """Respond-CAM and Grad-CAM of ``volume`` `(d, h, w)` at ``layer`` (default: the checkpoint's CAM
    layer) for ``class_name`` (default: the predicted class), resized to the input grid."""
    from tomocam import compute_cams, resize_maps

    x = _prepare(volume, meta)
    layer = layer or meta.cam_layer
    result = compute_cams(model, x, layer, methods=methods)  # maps (1, k, *s)
    logits = result.logits[0]
    c = _class_index(meta, class_name, logits)
    maps = {m: resize_maps(result.maps[m][:, c : c + 1], volume.shape)[0, 0].numpy() for m in methods}
    prob = float(torch.softmax(logits.double(), 0)[c])
    return Explanation(volume, maps, meta.classes[c], float(logits[c]), prob, layer)


def fig4_layers(model: nn.Module) -> list[str]:
    """Dotted names of the convolution and pooling layers, in model order (the panels of Fig. 4)."""
    return [name for name, module in model.named_modules() if isinstance(module, FIG4_LAYER_TYPES)]


def explain_layers(
    model: nn.Module, meta, volume: np.ndarray, *, class_name: str | None = None, layers: Sequence[str] | None = None
) -> list[Explanation]:
    """Respond-CAM of ``volume`` at every layer of ``layers`` (default :func:`fig4_layers`), one class
    (default: the predicted one), each resized to the input grid."""
    layers = list(layers) if layers is not None else fig4_layers(model)
    if class_name is None:
        with torch.no_grad():
            class_name = meta.classes[int(model(_prepare(volume, meta))[0].argmax())]
    return [
        explain_subtomogram(model, meta, volume, layer=name, class_name=class_name, methods=("respond",))
        for name in layers
    ]


def _oriented(volume: np.ndarray, polarity: str) -> np.ndarray:
    """The volume with particles bright (``"dark"`` data inverted), for isosurfaces and slices."""
    return -volume if polarity == "dark" else volume


def _isosurface(ax: Axes3D, volume: np.ndarray, level: float, color: str) -> bool:
    """Draw the ``level`` isosurface of `(d, h, w)` ``volume`` on a 3-D axes; False if the level is not crossed."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection
    from skimage.measure import marching_cubes

    if not volume.min() < level < volume.max():
        return False
    verts, faces, _, _ = marching_cubes(volume, level)  # verts (n, 3) in (z, y, x) voxels
    mesh = Poly3DCollection(verts[faces][..., ::-1], facecolor=color, edgecolor="none", alpha=0.55)
    ax.add_collection3d(mesh)
    return True


def _iso_axes(fig: Figure, spec, volume_shape: tuple[int, ...], title: str) -> Axes3D:
    ax = fig.add_subplot(spec, projection="3d", proj_type="ortho")
    assert isinstance(ax, Axes3D)
    d, h, w = volume_shape
    ax.set_xlim(0, w)
    ax.set_ylim(0, h)
    ax.set_zlim(0, d)
    ax.set_box_aspect((w, h, d))
    ax.view_init(elev=25, azim=-60)
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    return ax


def _heat_isosurfaces(ax: Axes3D, heat: np.ndarray) -> None:
    """Positive (red) and negative (blue) isosurfaces of a signed map at ``HEAT_ISO_FRACTION`` of its |max|."""
    limit = symmetric_limit(heat)
    _isosurface(ax, heat, HEAT_ISO_FRACTION * limit, "firebrick")
    _isosurface(ax, heat, -HEAT_ISO_FRACTION * limit, "royalblue")


def _slice(volume: np.ndarray, z: int) -> tuple[np.ndarray, Extent]:
    plane = volume[z]  # (h, w)
    rows, cols = plane.shape
    return plane, extent(rows, cols, 0.0, 0.0, 1.0, 1.0)


def render_fig3(explanation: Explanation, *, polarity: str = "bright", z: int | None = None) -> Figure:
    """Fig. 3 for one subtomogram: top, isosurfaces of the subtomogram and of each method's map; bottom,
    slice ``z`` (default: central) of each, the maps overlaid with a colour bar in score units."""
    e = explanation
    volume = _oriented(e.volume, polarity)
    z = volume.shape[0] // 2 if z is None else z
    methods = list(e.maps)
    fig = Figure(figsize=(3.2 * (1 + len(methods)), 6.4), layout="constrained")
    grid = fig.add_gridspec(2, 1 + len(methods))
    ax = _iso_axes(fig, grid[0, 0], volume.shape, f"subtomogram · {e.class_name} (p={e.probability:.2f})")
    _isosurface(ax, volume, float(volume.mean() + VOLUME_ISO_SIGMA * volume.std()), "lightgray")
    back, back_extent = _slice(volume, z)
    ax = fig.add_subplot(grid[1, 0])
    ax.imshow(back, cmap="gray", origin="lower", extent=back_extent, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"subtomogram · xy, z={z}", fontsize=8)
    for j, method in enumerate(methods, start=1):
        heat = e.maps[method]
        label = f"{METHOD_TITLES[method]} · {e.class_name}"
        _heat_isosurfaces(_iso_axes(fig, grid[0, j], heat.shape, f"{label}\n{e.layer}"), heat)
        ax = fig.add_subplot(grid[1, j])
        plane, plane_extent = _slice(heat, z)
        image = draw_overlay(ax, plane, plane_extent, symmetric_limit(heat), back, back_extent)
        ax.set_title(f"{label} · xy, z={z}\nsum {heat.sum():.3g}, score {e.score:.3g}", fontsize=8)
        fig.colorbar(image, ax=ax, shrink=0.8, label="score units")
    return fig


def render_fig4(explanations: Sequence[Explanation], *, polarity: str = "bright", z: int | None = None) -> Figure:
    """Fig. 4: one column per layer, the Respond-CAM isosurfaces (top) and slice ``z`` over the subtomogram
    (bottom), each with its own colour scale in score units."""
    n = len(explanations)
    fig = Figure(figsize=(2.8 * n, 6.0), layout="constrained")
    grid = fig.add_gridspec(2, n)
    for j, e in enumerate(explanations):
        heat = e.maps["respond"]
        volume = _oriented(e.volume, polarity)
        zz = volume.shape[0] // 2 if z is None else z
        _heat_isosurfaces(_iso_axes(fig, grid[0, j], heat.shape, e.layer), heat)
        ax = fig.add_subplot(grid[1, j])
        back, back_extent = _slice(volume, zz)
        plane, plane_extent = _slice(heat, zz)
        image = draw_overlay(ax, plane, plane_extent, symmetric_limit(heat), back, back_extent)
        ax.set_title(f"{e.layer}\nsum {heat.sum():.3g}", fontsize=8)
        fig.colorbar(image, ax=ax, shrink=0.7, label="score units", location="bottom")
    first = explanations[0]
    fig.suptitle(f"Respond-CAM of every layer · {first.class_name} (score {first.score:.3g})", fontsize=10)
    return fig
