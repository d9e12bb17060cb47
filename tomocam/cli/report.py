"""Printing a run summary (shared by ``tomocam explain`` and ``tomocam demo``)."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def disk_usage(path: str | Path) -> int:
    """Bytes that the files under ``path`` occupy on disk (allocated blocks, as ``du`` counts them)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:  # removed while walking
                continue
    return total


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``: binary units, three significant figures."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def print_summary(summary) -> None:
    """A short summary on stdout: tiles, blocks, time per phase, throughput, output path and its size on disk,
    top predicted classes."""
    s = summary.seconds
    top = ", ".join(f"{name} {n} (p {p:.2f})" for name, n, p in summary.top_classes)
    rows = [
        ("tiles", f"{summary.n_tiles} ({summary.blocks_computed} blocks computed, {summary.blocks_skipped} resumed)"),
        ("time", f"{s['total']:.1f} s (phase 1 {s['phase1']:.1f} s, stitch {s['phase2']:.1f} s, "
                 f"finalize {s['finalize']:.1f} s)"),
        ("throughput", f"{summary.tiles_per_second:.1f} tiles/s"),
        ("output", f"{summary.store} ({human_bytes(disk_usage(summary.store))} on disk)"),
        ("top classes", top or "-"),
        ("", "(tiles on which each class is the most probable; p: its probability averaged over all tiles)"),
    ]
    for label, value in rows:
        typer.echo(f"  {label:<12} {value}")


def warn_if_collapsed(summary) -> None:
    """Warn on stderr when nearly every tile got one class at high probability
    (:func:`tomocam.models.input_stats.predictions_collapsed`)."""
    from tomocam.models.input_stats import predictions_collapsed

    warning = predictions_collapsed(summary.top_classes, summary.n_tiles)
    if warning:
        typer.secho(f"Warning: {warning}", fg=typer.colors.YELLOW, err=True)
