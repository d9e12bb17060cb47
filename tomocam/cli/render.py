"""``tomocam render TARGET``: PNG figures of an explain store, or the paper's Fig. 3 and Fig. 4 of a subtomogram.

TARGET decides: a store (a ``.zarr`` folder from ``tomocam explain``) gives an overview (orthogonal slices of the
tomogram with the heatmaps of the chosen classes, both methods side by side) and a class montage per method; an
MRC file is taken as one subtomogram and gives Fig. 3 (isosurfaces and slices of it and of its Respond-CAM and
Grad-CAM) and Fig. 4 (Respond-CAM of every convolution and pooling layer) with ``--model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _parse_at(value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    try:
        z, y, x = (int(v) for v in value.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected three integers 'z,y,x' (voxels), found {value!r}") from None
    return z, y, x


def render(
    target: Annotated[Path, typer.Argument(help="An explain store (.zarr folder) or a subtomogram (.mrc).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for the PNG files. Default: beside TARGET.")
    ] = None,
    classes: Annotated[
        list[str] | None, typer.Option("--class", "-c", help="Class to show (repeat). Store: the overview's "
                                          "rows, default all classes (the montage always shows every class). "
                                          "Subtomogram: one class, default the predicted one.")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option("--method", "-m", help="Store: respond or gradcam (repeat). Default: "
                                          "all in the store.")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Store: slice through this voxel 'z,y,x' (level-0 voxels). Default: "
                                    "the centre.")
    ] = None,
    pixels: Annotated[int, typer.Option(help="Store: pixels along a panel's longest side; picks the pyramid "
                                        "level and the tomogram stride, so large stores render fast.")] = 256,
    model: Annotated[
        Path | None, typer.Option(help="Subtomogram: the checkpoint to explain with. Default: the bundled model.")
    ] = None,
    layer: Annotated[
        str | None, typer.Option(help="Subtomogram: the Fig. 3 layer. Default: the checkpoint's CAM layer.")
    ] = None,
    dpi: Annotated[int, typer.Option(help="PNG resolution.")] = 150,
    overwrite: Annotated[bool, typer.Option(help="Replace existing PNG files.")] = False,
) -> None:
    """Draw heatmaps over the data: store overviews and montages, or a subtomogram's Fig. 3 and Fig. 4."""
    from tomocam.errors import InputError

    out_dir = output if output is not None else Path(target).absolute().parent
    if Path(target).is_dir():
        paths = _render_store(target, out_dir, classes, method, _parse_at(at), pixels, dpi, overwrite)
    elif Path(target).is_file():
        if classes and len(classes) > 1:
            raise InputError(f"a subtomogram figure explains one class; got --class {', '.join(classes)}")
        paths = _render_subtomogram(target, out_dir, model, layer, classes[0] if classes else None, dpi, overwrite)
    else:
        raise InputError(f"'{target}' does not exist: expected an explain store (.zarr) or a subtomogram (.mrc)")
    for path in paths:
        typer.echo(str(path))


def _render_store(target, out_dir, classes, methods, at, pixels, dpi, overwrite) -> list[Path]:
    from tomocam.render.save import check_targets, save_png
    from tomocam.render.tomogram import render_montage, render_store
    from tomocam.store import open_store
    from tomocam.store.select import select_methods

    store = open_store(target)
    methods = select_methods(store, methods)
    stem = Path(target).name.removesuffix(".zarr")
    overview = out_dir / f"{stem}_overview.png"
    montages = {m: out_dir / f"{stem}_montage_{m}.png" for m in methods}
    check_targets([overview, *montages.values()], overwrite)
    written = [save_png(render_store(store, classes=classes, methods=methods, at=at, pixels=pixels), overview,
                        dpi=dpi)]
    for m, path in montages.items():
        written.append(save_png(render_montage(store, method=m, at=at), path, dpi=dpi))
    return written


def _render_subtomogram(target, out_dir, model_path, layer, class_name, dpi, overwrite) -> list[Path]:
    from tomocam.models import bundled_model_path, load_checkpoint
    from tomocam.render.save import check_targets, save_png
    from tomocam.render.subtomogram import (
        explain_layers,
        explain_subtomogram,
        read_subtomogram,
        render_fig3,
        render_fig4,
    )

    stem = Path(target).stem
    fig3, fig4 = out_dir / f"{stem}_fig3.png", out_dir / f"{stem}_fig4.png"
    check_targets([fig3, fig4], overwrite)
    net, meta = load_checkpoint(model_path or bundled_model_path())
    volume = read_subtomogram(target, meta.input_size)
    explanation = explain_subtomogram(net, meta, volume, layer=layer, class_name=class_name)
    layers = explain_layers(net, meta, volume, class_name=explanation.class_name)
    return [
        save_png(render_fig3(explanation, polarity=meta.polarity), fig3, dpi=dpi),
        save_png(render_fig4(layers, polarity=meta.polarity), fig4, dpi=dpi),
    ]
