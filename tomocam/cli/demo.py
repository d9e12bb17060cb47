"""``tomocam demo``: simulate a small tomogram of the built-in shapes, explain it, and draw an overview."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tomocam.explain.methods import METHOD_TITLES


def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the tomogram, store and overview.")] = Path(
        "tomocam-demo"
    ),
    model: Annotated[
        Path | None, typer.Option(help="Checkpoint trained on the built-in shapes. Default: the bundled model.")
    ] = None,
    size: Annotated[int, typer.Option(help="Tomogram edge in y and x (z is 64), voxels.")] = 160,
    particles: Annotated[int, typer.Option(help="Number of particles.")] = 24,
    snr: Annotated[float, typer.Option(help="Signal-to-noise ratio of the simulation.")] = 4.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    workers: Annotated[int | None, typer.Option(help="Local Dask workers.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the contents of an existing demo folder.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Simulate a small tomogram and explain it with the bundled model (the main job on its default).

    Explains with Respond-CAM and Grad-CAM, checks the class at each known particle's centre, and writes
    <output>/tomogram.mrc (with its particle table), <output>/tomogram.zarr and <output>/overview.png.
    """
    from tomocam.cli.report import print_summary, warn_if_collapsed
    from tomocam.models import bundled_model_path
    from tomocam.recipes.demo import run_demo

    result = run_demo(
        output, model=model or bundled_model_path(), shape=(64, size, size), n_particles=particles, snr=snr,
        seed=seed, workers=workers, overwrite=overwrite, progress=progress,
    )
    print_summary(result.summary)
    warn_if_collapsed(result.summary)
    k = len(result.competing)
    typer.echo(f"  {'particles':<12} {result.n_particles} simulated, {k} classes; truth in "
               f"{result.tomogram.with_name(result.tomogram.stem + '_particles.csv')}")
    typer.echo("  class at centre: the fraction of particles whose own class has the highest heatmap value at the")
    typer.echo(f"  particle's centre, among the {k} particle classes; picking a class at random scores {1 / k:.2f} "
               "(chance)")
    for method, rate in result.class_at_centre.items():
        typer.echo(f"    {METHOD_TITLES[method]:<12} {rate:.2f}")
    typer.echo(f"  {'overview':<12} {result.overview} (the caption under the figure says what it shows)")
