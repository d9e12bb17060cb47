"""``tomocam demo``: simulate a small tomogram of the built-in shapes, explain it, and draw an overview."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the tomogram, store and overview.")] = Path(
        "tomocam-demo"
    ),
    model: Annotated[
        Optional[Path], typer.Option(help="Checkpoint trained on the built-in shapes. Default: the bundled model.")
    ] = None,
    size: Annotated[int, typer.Option(help="Tomogram edge in y and x (z is 64), voxels.")] = 160,
    particles: Annotated[int, typer.Option(help="Number of particles.")] = 24,
    snr: Annotated[float, typer.Option(help="Signal-to-noise ratio of the simulation.")] = 4.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    workers: Annotated[Optional[int], typer.Option(help="Local Dask workers.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the contents of an existing demo folder.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Simulate a small tomogram and explain it with the bundled model (the main job on its default).

    Explains with Respond-CAM and Grad-CAM, scores the pointing game against the known particles, and writes
    <output>/tomogram.mrc, <output>/tomogram.zarr and <output>/overview.png.
    """
    from tomocam.cli.report import print_summary
    from tomocam.models import bundled_model_path
    from tomocam.pipeline.demo import run_demo

    result = run_demo(
        output, model=model or bundled_model_path(), shape=(64, size, size), n_particles=particles, snr=snr,
        seed=seed, workers=workers, overwrite=overwrite, progress=progress,
    )
    print_summary(result.summary)
    k = len(result.classes)
    for method, rate in result.pointing.items():
        typer.echo(f"  {'pointing ' + method:<12} {rate:.2f} of {result.n_particles} particles (chance {1 / k:.2f})")
    typer.echo(f"  {'overview':<12} {result.overview}")
