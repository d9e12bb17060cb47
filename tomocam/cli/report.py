"""Printing a run summary (shared by ``tomocam explain`` and ``tomocam demo``)."""

from __future__ import annotations

import typer


def print_summary(summary) -> None:
    """A short summary on stdout: tiles, blocks, time per phase, throughput, output path, top predicted classes."""
    s = summary.seconds
    top = ", ".join(f"{name} ({n} tiles, mean p {p:.2f})" for name, n, p in summary.top_classes)
    rows = [
        ("tiles", f"{summary.n_tiles} ({summary.blocks_computed} blocks computed, {summary.blocks_skipped} resumed)"),
        ("time", f"{s['total']:.1f} s (phase 1 {s['phase1']:.1f} s, stitch {s['phase2']:.1f} s, "
                 f"finalize {s['finalize']:.1f} s)"),
        ("throughput", f"{summary.tiles_per_second:.1f} tiles/s"),
        ("output", summary.store),
        ("top classes", top or "-"),
    ]
    for label, value in rows:
        typer.echo(f"  {label:<12} {value}")
