"""`tomocam evaluate`: the paper's Table 1 (``table1``: accuracy, L1 and Kendall's tau of Grad-CAM and Respond-CAM)
and how well heatmaps find particles in a tomogram (``localisation``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tomocam.device import DEVICE_HELP

app = typer.Typer(help="Measure a model and its heatmaps.", no_args_is_help=True)


@app.command("table1")
def table1(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.pt) made by 'tomocam train'.")],
    dataset: Annotated[Path, typer.Argument(help="Dataset made by 'tomocam simulate subtomograms'.")],
    layer: Annotated[str | None, typer.Option("--layer", help="Layer to explain (default: the checkpoint's).")] = None,
    split: Annotated[str, typer.Option("--split", help="'test' (the model's test split) or 'all'.")] = "test",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Boxes per batch.")] = 32,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads for torch.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Measure the sum-to-score property of Respond-CAM and Grad-CAM for a model on a dataset."""
    import json

    import torch
    from rich.table import Table

    from tomocam.cli.console import results_console
    from tomocam.device import resolve_device
    from tomocam.evaluate.table1 import evaluate_model
    from tomocam.models import load_checkpoint
    from tomocam.simulate import open_dataset

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    net, meta = load_checkpoint(model, device=dev)
    ds = open_dataset(dataset)
    result = evaluate_model(net, meta, ds, layer=layer, split=split, batch_size=batch_size, device=dev)
    result = {"model": str(model), "dataset": str(dataset), **result}
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    console = results_console()
    console.print(f"{model} on {dataset}: {result['split']} split, n = {result['n']}, layer {result['layer']}")
    table = Table(title="Sum-to-score (Table 1)")
    table.add_column("metric")
    table.add_column("Grad-CAM", justify="right")
    table.add_column("Respond-CAM", justify="right")
    g, r = result["gradcam"], result["respond"]
    table.add_row("L1 error", f"{g['l1_mean']:.3f} ± {g['l1_std']:.3f}", f"{r['l1_mean']:.3f} ± {r['l1_std']:.3f}")
    table.add_row("Kendall's tau", f"{g['tau_mean']:.3f} ± {g['tau_std']:.3f}",
                  f"{r['tau_mean']:.3f} ± {r['tau_std']:.3f}")
    console.print(table)
    typer.echo(f"accuracy {result['accuracy']:.4f}; mean |score| {result['score_abs_mean']:.3f}")
    ident = result["identity"]
    typer.echo(f"Grad-CAM sum = Respond-CAM sum - Z*sum_l Cov_s(A_l, dy/dA_l): mean |Z*sum Cov| "
               f"{ident['covariance_abs_mean']:.3f}, identity holds to {ident['residual_max']:.1e}")


@app.command("localisation")
def localisation(
    store: Annotated[Path, typer.Argument(help="Explain store (.zarr) written by 'tomocam explain'.")],
    particles: Annotated[Path, typer.Argument(help="Known particles: the CSV of 'tomocam simulate tomogram' "
                                              "(class_name,x,y,z in voxels) or a STAR file.")],
    tomogram: Annotated[Path | None, typer.Option("--tomogram", help="The explained tomogram, for the no-model "
                                                     "baseline (default: the store's input).")] = None,
    method: Annotated[list[str] | None, typer.Option("--method", "-m", help="respond or gradcam (repeat). "
                                                        "Default: every method in the store.")] = None,
    cube: Annotated[int, typer.Option("--cube", help="Edge of the cube around a particle searched for the "
                                      "maximum, voxels.")] = 41,
    radius: Annotated[float, typer.Option("--radius", help="A maximum (or a pick) within this many voxels of a "
                                          "particle's centre is a hit.")] = 6.0,
    sigma: Annotated[float, typer.Option("--sigma", help="Gaussian smoothing of the no-model baseline, "
                                         "voxels.")] = 2.0,
    particle_contrast: Annotated[str | None, typer.Option("--particles-look", help="'bright' or 'dark' in the "
                                 "tomogram, for the baseline. Default: as the explain run assumed (the model's "
                                 "polarity, flipped by --invert).")] = None,
    pick_radius: Annotated[float, typer.Option("--pick-radius", help="Non-maximum suppression radius of the picks, "
                                               "voxels.")] = 10.0,
    pick_threshold: Annotated[float | None, typer.Option("--pick-threshold", help="Minimum heatmap value of a "
                              "pick, score units. Default: per class from the data, as 'tomocam picks'.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Measure how well heatmaps find known particles: pointing game, class at the centre, picks F1."""
    import json

    from rich.table import Table

    from tomocam.cli.console import results_console
    from tomocam.errors import InputError
    from tomocam.evaluate.localisation import evaluate_localisation
    from tomocam.read.mrc import open_tomogram
    from tomocam.store import open_store
    from tomocam.write.picks_table import read_particles

    opened = open_store(store)
    table = read_particles(particles)
    if particle_contrast is None:
        bright = _particles_bright(opened)
    elif particle_contrast in ("bright", "dark"):
        bright = particle_contrast == "bright"
    else:
        raise InputError(f"--particles-look must be 'bright' or 'dark', found {particle_contrast!r}")
    tomo = open_tomogram(tomogram if tomogram is not None else opened.input_path)
    result = evaluate_localisation(opened, table, tomo.array(), bright=bright, methods=method, cube=cube,
                                   radius=radius, sigma=sigma, pick_radius=pick_radius,
                                   pick_threshold=pick_threshold, source=str(particles))
    result = {"store": str(store), "particles": str(particles), "tomogram": tomo.path, **result}
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    console = results_console()
    console.print(f"{store}: {result['n']} particles of {len(result['classes'])} classes from {particles}")
    out = Table(title=f"Localisation (cube {cube}^3, hit within {radius:g} voxels)")
    for col in ("", "pointing", "any", "class", "P", "R", "F1", "best F1", "at t"):
        out.add_column(col, justify="right", no_wrap=True) if col else out.add_column(col, no_wrap=True)
    names = {"respond": "Respond-CAM", "gradcam": "Grad-CAM"}
    for m, r in result["methods"].items():
        p = r["picks"]
        out.add_row(names.get(m, m), f"{r['pointing']:.3f}", f"{r['pointing_any_instance']:.3f}",
                    f"{r['class_accuracy']:.3f}", f"{p['precision']:.3f}", f"{p['recall']:.3f}", f"{p['f1']:.3f}",
                    f"{p['best_f1']:.3f}", f"{p['best_threshold']:.2g}")
    b, c = result["baseline"], result["chance"]
    out.add_row("no model", f"{b['pointing']:.3f}", f"{b['pointing_any_instance']:.3f}", "-", "-", "-", "-", "-", "-")
    out.add_row("chance", f"{c['pointing']:.3f}", f"{c['pointing_any_instance']:.3f}", f"{c['class_accuracy']:.3f}",
                "-", "-", f"{c['picks_f1']:.3f}", "-", "-")
    console.print(out)
    at = "the per-class default threshold" if pick_threshold is None else f"threshold {pick_threshold:g}"
    typer.echo("pointing: the true class's maximum in the cube lies on the particle; any: on any particle of its "
               f"class (the cube may hold neighbours); class: the class at the particle centre; P, R, F1: picks at "
               f"{at}; best F1: the threshold tuned on the truth (an upper bound). No model: the "
               f"{result['polarity']} extreme of the tomogram smoothed by sigma {sigma:g} voxels. Chance: pointing "
               "(any) = share of the cube within the radius of the particle (of any of its class); class = "
               "1 / classes; picks = random positions and classes, as many as particles.")


def _particles_bright(store) -> bool:
    """Whether particles are bright in the explained tomogram, as its explain run assumed: the model's training
    polarity, flipped when the run inverted the contrast."""
    from tomocam.errors import InputError
    from tomocam.models import load_checkpoint

    attrs = store.attrs
    model = attrs.get("model", {}).get("path")
    if not model:
        raise InputError(f"store '{store.path}' does not name its model: give --particles-look bright or dark")
    try:
        _, meta = load_checkpoint(model)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the store's model '{model}' for its polarity ({err}): give --particles-look "
                         "bright or dark") from None
    return (meta.polarity == "bright") != bool(attrs.get("invert", False))
