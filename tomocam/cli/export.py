"""`tomocam export` (being built: see the issue tracker)."""

from __future__ import annotations

from tomocam.errors import TomocamError


def export() -> None:
    """Not built yet."""
    raise TomocamError("'tomocam export' is not built yet")
