"""OME-Zarr (NGFF 0.5) metadata as plain dictionaries (pure functions, no I/O).

Level 0 samples the tomogram every ``step`` voxels from voxel ``offset`` (``step`` 1, ``offset`` 0: the
tomogram's own grid); level ``n`` averages ``2**n`` level-0 samples per axis, so its spacing is
``2**n * step * v`` and its first sample sits at ``(offset + (2**n - 1) / 2 * step) * v`` (angstrom, the centre
of the tomogram's first voxel at 0).
"""

from __future__ import annotations

NGFF_VERSION = "0.5"

#: Colours (hex RGB) cycled over classes for viewers that read ``omero`` channel metadata.
PALETTE = ("FF0000", "00FF00", "0000FF", "FFFF00", "FF00FF", "00FFFF", "FF8000", "8000FF", "0080FF", "80FF00")


def space_axes() -> list[dict]:
    """The z, y, x axes in angstrom."""
    return [{"name": a, "type": "space", "unit": "angstrom"} for a in ("z", "y", "x")]


def level_transforms(
    voxel_size: tuple[float, ...],
    level: int,
    channel: bool,
    step: tuple[int, ...] | None = None,
    offset: tuple[int, ...] | None = None,
) -> list[dict]:
    """Scale and translation (angstrom) of pyramid ``level`` of a level 0 sampled every ``step`` voxels from
    voxel ``offset`` (default: the tomogram's grid); a leading unit entry for a channel axis."""
    f = 2**level
    step = step or (1,) * len(voxel_size)
    offset = offset or (0,) * len(voxel_size)
    scale = [v * f * s for v, s in zip(voxel_size, step)]
    shift = [(o + (f - 1) / 2 * s) * v for v, s, o in zip(voxel_size, step, offset)]
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
    """The ``multiscales`` list for an image (``channel=True``: axes c, z, y, x) or a label image (z, y, x)."""
    axes = ([{"name": "c", "type": "channel"}] if channel else []) + space_axes()
    return [
        {
            "name": name,
            "axes": axes,
            "datasets": [
                {"path": str(level),
                 "coordinateTransformations": level_transforms(voxel_size, level, channel, step, offset)}
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
