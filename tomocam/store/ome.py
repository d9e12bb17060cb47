"""OME-Zarr (NGFF 0.5) metadata as plain dictionaries (pure functions, no I/O).

Level 0 samples the tomogram every ``step`` voxels from voxel ``offset`` (``step`` 1, ``offset`` 0: the
tomogram's own grid); level ``n`` of a heatmap averages ``2**n`` level-0 samples per axis, so its spacing is
``2**n * step * v`` and its first sample sits at ``(offset + (2**n - 1) / 2 * step) * v`` (angstrom, the centre
of the tomogram's first voxel at 0). Level ``n`` of a label image keeps level-0 voxel ``(2**n - 1) // 2`` of
each ``2**n`` (:func:`tomocam.store.pyramid.label_pyramid`), so its first voxel sits at ``(2**n - 1) // 2 * v``.

**Placement in napari.** The 0.5 specification places a level by its ``scale`` and then its ``translation``;
napari's OME-Zarr plugin (napari-ome-zarr 0.10, napari 0.9) reads only the first transformation of level 0 (the
scale) and drops the translation. The explain store therefore samples level 0 from voxel 0 (``offset`` 0,
:class:`tomocam.store.layout.Sampling`), so level 0 of every image needs no translation and napari puts each
sample on its voxel; the coarser levels keep the translations the specification asks for (napari draws them
by its own convention, a coarse pixel from its first level-0 sample).
"""

from __future__ import annotations

NGFF_VERSION = "0.5"

#: Colours (hex RGB) cycled over classes for viewers that read ``omero`` channel metadata.
PALETTE = ("FF0000", "00FF00", "0000FF", "FFFF00", "FF00FF", "00FFFF", "FF8000", "8000FF", "0080FF", "80FF00")


def dimension_names(channel: bool) -> tuple[str, ...]:
    """Names of the dimensions of an image's arrays (``channel=True``: c, z, y, x) or a label image's (z, y, x):
    zarr v3 ``dimension_names``, which OME-Zarr 0.5 requires to match the ``multiscales`` axes."""
    return ("c", "z", "y", "x") if channel else ("z", "y", "x")


def level_transforms(
    voxel_size: tuple[float, ...],
    level: int,
    channel: bool,
    step: tuple[int, ...] | None = None,
    offset: tuple[int, ...] | None = None,
    nearest: bool = False,
) -> list[dict]:
    """Scale and translation (angstrom) of pyramid ``level`` of a level 0 sampled every ``step`` voxels from
    voxel ``offset`` (default: the tomogram's grid); a leading unit entry for a channel axis. Coarser levels are
    means of ``2**level`` samples per axis, or with ``nearest`` the sample ``(2**level - 1) // 2`` of them."""
    f = 2**level
    step = step or (1,) * len(voxel_size)
    offset = offset or (0,) * len(voxel_size)
    first = (f - 1) // 2 if nearest else (f - 1) / 2  # level-0 samples from a coarse voxel's first to its centre
    scale = [v * f * s for v, s in zip(voxel_size, step)]
    shift = [(o + first * s) * v for v, s, o in zip(voxel_size, step, offset)]
    lead = [1.0] if channel else []
    lead0 = [0.0] if channel else []
    return [
        {"type": "scale", "scale": lead + scale},
        {"type": "translation", "translation": lead0 + shift},
    ]


def multiscales(
    name: str,
    voxel_size: tuple[float, ...],
    n_levels: int,
    channel: bool,
    step: tuple[int, ...] | None = None,
    offset: tuple[int, ...] | None = None,
) -> list[dict]:
    """The ``multiscales`` list for an image (``channel=True``: axes c, z, y, x; pyramid of means) or a label
    image (z, y, x; pyramid of nearest voxels)."""
    axes = [{"name": a, "type": "channel"} if a == "c" else {"name": a, "type": "space", "unit": "angstrom"}
            for a in dimension_names(channel)]
    return [
        {
            "name": name,
            "axes": axes,
            "datasets": [
                {"path": str(level),
                 "coordinateTransformations": level_transforms(voxel_size, level, channel, step, offset,
                                                               nearest=not channel)}
                for level in range(n_levels)
            ],
            "type": "mean" if channel else "nearest",
        }
    ]


def image_metadata(
    name: str,
    voxel_size: tuple[float, ...],
    n_levels: int,
    classes: list[str],
    window: tuple[float, float],
    step: tuple[int, ...] | None = None,
    offset: tuple[int, ...] | None = None,
) -> dict:
    """The ``ome`` attribute of a heatmap image sampled every ``step`` voxels from voxel ``offset``: multiscales
    plus ``omero`` channels labelled by class."""
    lo, hi = window
    channels = [
        {
            "label": cls,
            "color": PALETTE[i % len(PALETTE)],
            "active": i == 0,
            "window": {"min": lo, "max": hi, "start": 0.0, "end": hi},
        }
        for i, cls in enumerate(classes)
    ]
    return {
        "version": NGFF_VERSION,
        "multiscales": multiscales(name, voxel_size, n_levels, channel=True, step=step, offset=offset),
        "omero": {"name": name, "channels": channels, "rdefs": {"model": "color"}},
    }


def label_metadata(name: str, voxel_size: tuple[float, ...], n_levels: int, classes: list[str], source: str) -> dict:
    """The ``ome`` attribute of a label image: value ``i + 1`` is ``classes[i]``, 0 is background."""
    colors = []
    for i in range(len(classes)):
        rgb = PALETTE[i % len(PALETTE)]
        colors.append({"label-value": i + 1, "rgba": [int(rgb[j : j + 2], 16) for j in (0, 2, 4)] + [255]})
    return {
        "version": NGFF_VERSION,
        "multiscales": multiscales(name, voxel_size, n_levels, channel=False),
        "image-label": {
            "version": NGFF_VERSION,
            "colors": colors,
            "properties": [{"label-value": i + 1, "class": c} for i, c in enumerate(classes)],
            "source": {"image": source},
        },
    }
