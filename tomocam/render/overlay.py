"""Drawing one signed heatmap slice over a greyscale image slice, as in the paper's Fig. 3.

The heatmap keeps its score units: a diverging colormap centred at zero with symmetric limits, positive
contours solid and negative contours dashed. Its opacity grows with ``|value|`` so that the tomogram stays
visible where the heatmap is near zero. Both images are placed by their extent in angstrom, so a coarse
heatmap level lies exactly over a finer tomogram slice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.image import AxesImage

#: ``imshow`` extent: left, right, bottom, top.
Extent = tuple[float, float, float, float]

#: Colormap of signed heatmaps: red positive (evidence for the class), blue negative.
CMAP = "RdBu_r"
#: Contour levels as fractions of the colour limit; mirrored (dashed) for negative values.
CONTOUR_FRACTIONS = (0.3, 0.6)


def extent(
    n_rows: int, n_cols: int, row0: float, col0: float, row_step: float, col_step: float
) -> Extent:
    """``imshow`` extent (left, right, bottom, top) of a plane whose first pixel centre is at ``(row0, col0)``,
    with ``origin="lower"``: pixel edges half a step around the centres."""
    return (
        col0 - col_step / 2, col0 + (n_cols - 0.5) * col_step,
        row0 - row_step / 2, row0 + (n_rows - 0.5) * row_step,
    )


def symmetric_limit(*planes: np.ndarray) -> float:
    """The largest ``|value|`` over ``planes`` (a tiny positive number if all are zero)."""
    peak = max((float(np.abs(p).max()) for p in planes if p.size), default=0.0)
    return peak if peak > 0 else 1e-12


def norm(limit: float) -> TwoSlopeNorm:
    """Colour scale from ``-limit`` to ``limit`` centred at zero."""
    return TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)


def draw_overlay(
    ax: Axes,
    heat: np.ndarray,
    heat_extent: Extent,
    limit: float,
    background: np.ndarray | None = None,
    background_extent: Extent | None = None,
) -> AxesImage:
    """Draw ``background`` (greyscale, `(rows, cols)`) and ``heat`` (`(rows, cols)` score units) on ``ax``.

    Returns the heatmap image (its ``get_array()`` is ``heat``), for a colour bar.
    """
    if background is not None and background.size:
        lo, hi = np.percentile(background, [1, 99])
        ax.imshow(background, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower",
                  extent=background_extent, interpolation="nearest")
    alpha = np.clip(np.abs(heat) / limit, 0.0, 1.0) * 0.85 if background is not None else None
    image = ax.imshow(heat, cmap=CMAP, norm=norm(limit), alpha=alpha, origin="lower", extent=heat_extent,
                      interpolation="nearest")
    if min(heat.shape) >= 2:
        levels = [f * limit for f in CONTOUR_FRACTIONS]
        kw: dict[str, Any] = dict(origin="lower", extent=heat_extent, linewidths=0.8)
        if heat.max() > levels[0]:
            ax.contour(heat, levels=levels, colors="darkred", linestyles="solid", **kw)
        if heat.min() < -levels[0]:
            ax.contour(heat, levels=[-v for v in levels[::-1]], colors="navy", linestyles="dashed", **kw)
    ax.set_xticks([])
    ax.set_yticks([])
    return image
