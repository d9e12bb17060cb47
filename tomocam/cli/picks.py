"""``tomocam picks STORE``: particle picks from heatmap peaks, in the field's table formats, optionally scored
against truth."""

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
        Path | None, typer.Option("--output", "-o", help="Output path without suffix; each format adds its own "
                                     "(.star, .csv; copick .json and ndjson one file per class, "
                                     "<output>_<class>.json). Default: <store>_<method>_picks beside the store.")
    ] = None,
    formats: Annotated[
        list[str] | None, typer.Option("--format", "-f", help="Table format (repeat): relion5 (rlnTomoName, "
                                          "rlnCenteredCoordinateX/Y/ZAngst), relion3 (rlnCoordinateX/Y/Z in voxels, "
                                          "rlnMicrographName; Warp), csv, copick (picks JSON), ndjson (CZ cryoET "
                                          "data portal points). Default: relion3 and csv.")
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
        Path | None, typer.Option(help="Known particles to score the picks against: any table 'tomocam picks' "
                                     "writes (RELION 5 or 3 STAR, CSV such as 'tomocam simulate tomogram' makes, "
                                     "copick JSON, data-portal ndjson); rows of other tomograms are left out.")
    ] = None,
    truth_voxel_size: Annotated[
        float | None, typer.Option(help="Angstrom per voxel of the truth table's voxel coordinates when the table "
                                      "does not state it. Default: the explained tomogram's.")
    ] = None,
    truth_class: Annotated[
        str | None, typer.Option(help="Class of a truth table that names none (data-portal ndjson; default: "
                                      "its file stem).")
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
    """Pick particles from heatmap peaks into particle tables (RELION 5 or 3 STAR, CSV, copick, data portal).

    Local maxima of each class heatmap above a threshold, one per particle radius, with class and score. The
    tomogram is named by the stem of the explained file; RELION 5 coordinates are centred on it.
    """
    from tomocam.classes import is_background
    from tomocam.cli.console import results_console
    from tomocam.errors import InputError, OutputError
    from tomocam.particles import check_classes, read_particles
    from tomocam.picking import evaluate_picks, pick_store, store_tomogram
    from tomocam.store import open_store
    from tomocam.store.select import select_classes

    if radius <= 0:
        raise InputError(f"--radius must be > 0 angstrom, found {radius}")
    formats = _checked_formats(formats)
    opened = open_store(store)
    tomogram = store_tomogram(opened)
    infos = {tomogram.name: tomogram}
    classes = select_classes(opened, classes or [c for c in opened.classes if not is_background(c)])
    base = output if output is not None else Path(store).absolute().with_name(
        f"{Path(store).name.removesuffix('.zarr')}_{method}_picks")
    files = _pick_files(base, formats, classes)
    existing = [str(p) for paths in files.values() for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"pick files exist already: {', '.join(existing)}; pass --overwrite to replace them")
    expected = None
    if truth is not None:
        expected = read_particles(truth, tomograms=infos, voxel_size=truth_voxel_size, tomogram=tomogram.name,
                                  class_name=truth_class, classes=opened.classes)
        check_classes(expected, opened.classes, f"'{truth}'")
    table = pick_store(opened, method=method, classes=classes, threshold=threshold, radius=radius, level=level,
                       exclusive=exclusive)
    written = _write_picks(table, files, classes, infos, overwrite)
    console = results_console()
    rule = "given" if threshold is not None else "median + 3 robust sd of the class's peaks"
    console.print(f"threshold ({rule}): " + ", ".join(f"{name} {t:.3g}" for name, t in
                                                      table.attrs["thresholds"].items()), highlight=False)
    console.print(f"{len(table)} picks -> {', '.join(map(str, written))}")
    if expected is not None:
        per_class, overall = evaluate_picks(table, expected, tolerance or radius, classes)
        console.print(_score_table(per_class, overall, f"Picks from {method} heatmaps vs {truth} (tolerance "
                                                       f"{tolerance or radius:g} A)"))


#: Formats written one file per class (their files name one object each).
PER_CLASS_FORMATS = ("copick", "ndjson")


def _checked_formats(formats: list[str] | None) -> list[str]:
    """The ``--format`` values asked (default RELION 3 STAR and CSV), each once; unknown ones and both STAR
    flavours at once (the same file) are an :class:`InputError`."""
    from tomocam.errors import InputError
    from tomocam.particles import FORMATS

    formats = list(dict.fromkeys(formats or ["relion3", "csv"]))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InputError(f"unknown --format {', '.join(unknown)}: choose from {', '.join(FORMATS)}")
    if {"relion3", "relion5"} <= set(formats):
        raise InputError("relion3 and relion5 both write <output>.star: ask for one, or run twice with two --output")
    return formats


def _pick_files(base: Path, formats: list[str], classes: list[str]) -> dict[str, list[Path]]:
    """The files each format writes: ``<base><suffix>``, or ``<base>_<class><suffix>`` per class for the formats
    of one class a file."""
    from tomocam.particles import FORMATS

    return {fmt: [base.with_name(f"{base.name}_{name}{FORMATS[fmt]}") for name in classes]
            if fmt in PER_CLASS_FORMATS else [base.with_name(base.name + FORMATS[fmt])] for fmt in formats}


def _write_picks(table, files: dict[str, list[Path]], classes: list[str], infos, overwrite: bool) -> list[Path]:
    """Write ``table`` in every format of ``files``; a per-class file only for a class with picks."""
    from tomocam.particles import write_particles

    written: list[Path] = []
    for fmt, paths in files.items():
        if fmt not in PER_CLASS_FORMATS:
            written.append(write_particles(table, paths[0], fmt, tomograms=infos, overwrite=overwrite))
            continue
        for name, path in zip(classes, paths):
            rows = table[table["class"] == name]
            if len(rows):  # a file names its class by its rows: none, no file
                written.append(write_particles(rows, path, fmt, tomograms=infos, overwrite=overwrite))
    return written


def _score_table(per_class: dict, overall, title: str):
    """A rich table of precision, recall and F1 per class and over all classes."""
    from rich.table import Table

    report = Table(title=title)
    for col in ("class", "picks", "particles", "TP", "precision", "recall", "F1"):
        report.add_column(col, justify="left" if col == "class" else "right")
    for name, s in [*per_class.items(), ("all", overall)]:
        report.add_row(name, str(s.true_positives + s.false_positives), str(s.true_positives + s.false_negatives),
                       str(s.true_positives), f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}")
    return report
