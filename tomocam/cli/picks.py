"""``tomocam picks STORE``: particle picks from heatmap peaks, as STAR and CSV, optionally scored against truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def picks(
    store: Annotated[Path, typer.Argument(help="An explain store (.zarr) written by 'tomocam explain'.")],
    radius: Annotated[
        float, typer.Option("--radius", "-r", help="Particle radius in angstrom: peaks of a class closer than this "
                            "are merged (non-maximum suppression).")
    ],
    threshold: Annotated[
        float | None, typer.Option("--threshold", "-t", help="Minimum heatmap value, score units. Default: "
                                      "chosen per class from the data, 3 robust standard deviations (1.4826 x "
                                      "MAD) above the median of all that class's heatmap peaks.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output path without suffix; .star and .csv are "
                                     "written. Default: <store>_<method>_picks beside the store.")
    ] = None,
    method: Annotated[str, typer.Option("--method", "-m",
                                        help="Heatmaps to pick from: respond or gradcam.")] = "respond",
    classes: Annotated[
        list[str] | None, typer.Option("--class", "-c", help="Class to pick (repeat). Default: every class "
                                          "except 'background' (which still competes for each site).")
    ] = None,
    level: Annotated[int, typer.Option(help="Pyramid level to search (coarser is faster; coordinates are "
                                       "always given on the tomogram's grid).")] = 0,
    truth: Annotated[
        Path | None, typer.Option(help="Known particles (CSV with class_name,x,y,z in voxels, e.g. from "
                                     "'tomocam simulate tomogram', or STAR) to score the picks against.")
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="Largest pick-to-particle distance (angstrom) that counts as a hit. "
                                      "Default: the radius.")
    ] = None,
    exclusive: Annotated[
        bool, typer.Option("--exclusive/--overlap", help="Pick a class only where its heatmap is the highest of "
                           "all classes (one class per particle), or let classes pick independently.")
    ] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace existing pick files.")] = False,
) -> None:
    """Pick particles from heatmap peaks into STAR and CSV tables.

    Local maxima of each class heatmap above a threshold, one per particle radius, written as a RELION/Warp
    STAR file (rlnCoordinateX/Y/Z in voxels, plus angstrom, class and score) and a CSV.
    """
    from rich.table import Table

    from tomocam.classes import is_background
    from tomocam.cli.console import results_console
    from tomocam.errors import InputError, OutputError
    from tomocam.picking import evaluate_picks, pick_store
    from tomocam.store import open_store
    from tomocam.store.select import select_classes
    from tomocam.write.picks_table import read_particles, write_csv, write_star

    if radius <= 0:
        raise InputError(f"--radius must be > 0 angstrom, found {radius}")
    opened = open_store(store)
    classes = select_classes(opened, classes or [c for c in opened.classes if not is_background(c)])
    base = output if output is not None else Path(store).absolute().with_name(
        f"{Path(store).name.removesuffix('.zarr')}_{method}_picks")
    star_path, csv_path = base.with_name(base.name + ".star"), base.with_name(base.name + ".csv")
    existing = [str(p) for p in (star_path, csv_path) if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"pick files exist already: {', '.join(existing)}; pass --overwrite to replace them")
    expected = read_particles(truth) if truth is not None else None
    table = pick_store(opened, method=method, classes=classes, threshold=threshold, radius=radius, level=level,
                       exclusive=exclusive)
    write_csv(table, csv_path, overwrite=overwrite)
    write_star(table, star_path, overwrite=overwrite)
    console = results_console()
    rule = "given" if threshold is not None else "median + 3 robust sd of the class's peaks"
    console.print(f"threshold ({rule}): " + ", ".join(f"{name} {t:.3g}" for name, t in
                                                      table.attrs["thresholds"].items()), highlight=False)
    console.print(f"{len(table)} picks -> {star_path}, {csv_path}")
    if expected is not None:
        per_class, overall = evaluate_picks(table, expected, tolerance or radius, opened.voxel_size, classes)
        report = Table(title=f"Picks from {method} heatmaps vs {truth} (tolerance {tolerance or radius:g} A)")
        for col in ("class", "picks", "particles", "TP", "precision", "recall", "F1"):
            report.add_column(col, justify="left" if col == "class" else "right")
        for name, s in [*per_class.items(), ("all", overall)]:
            report.add_row(name, str(s.true_positives + s.false_positives), str(s.true_positives + s.false_negatives),
                           str(s.true_positives), f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}")
        console.print(report)
