"""Printing a run summary (shared by ``tomocam explain`` and ``tomocam demo``)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_summary(summary, console: Console) -> None:
    """A short table: tiles, blocks, time per phase, throughput, output path, top predicted classes."""
    s = summary.seconds
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_row("tiles", f"{summary.n_tiles} ({summary.blocks_computed} blocks computed, "
                  f"{summary.blocks_skipped} resumed)")
    table.add_row("time", f"{s['total']:.1f} s (phase 1 {s['phase1']:.1f} s, stitch {s['phase2']:.1f} s, "
                  f"finalize {s['finalize']:.1f} s)")
    table.add_row("throughput", f"{summary.tiles_per_second:.1f} tiles/s")
    table.add_row("output", summary.store)
    top = ", ".join(f"{name} ({n} tiles, mean p {p:.2f})" for name, n, p in summary.top_classes)
    table.add_row("top classes", top or "-")
    console.print(table)
