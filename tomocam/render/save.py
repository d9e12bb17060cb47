"""Saving figures as PNG without leaving a half-written file under the final name."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from tomocam.errors import OutputError


def check_targets(paths: list[Path], overwrite: bool) -> None:
    """:class:`OutputError` naming the existing ``paths`` unless ``overwrite``; call before any work."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise OutputError(f"figure exists already: {', '.join(existing)}; pass --overwrite to replace it")


def save_png(fig: Figure, path: Path, *, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` (PNG) through a temporary name, then rename."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(partial, dpi=dpi, format="png")
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write figure {path}: {err.strerror or err}") from err
    return path
