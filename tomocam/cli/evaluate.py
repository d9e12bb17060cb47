"""`tomocam evaluate`: the paper's Table 1 (``table1``: accuracy, L1 and Kendall's tau of Grad-CAM and Respond-CAM)
and how well heatmaps find particles in a tomogram (``localisation``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Measure a model and its heatmaps.", no_args_is_help=True)


@app.command("table1")
def table1(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.pt) made by 'tomocam train'.")],
    dataset: Annotated[Path, typer.Argument(help="Dataset made by 'tomocam simulate subtomograms'.")],
    layer: Annotated[Optional[str], typer.Option("--layer", help="Layer to explain (default: the checkpoint's).")] = None,
    split: Annotated[str, typer.Option("--split", help="'test' (the model's test split) or 'all'.")] = "test",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Boxes per batch.")] = 32,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda ...")] = "auto",
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads for torch.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Measure the sum-to-score property of Respond-CAM and Grad-CAM for a model on a dataset."""
    import json

    import torch
    from rich.console import Console
    from rich.table import Table

    from tomocam.evaluate.table1 import evaluate_model
    from tomocam.models import load_checkpoint
    from tomocam.simulate import open_dataset
    from tomocam.train import resolve_device

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
    console = Console()
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
