"""`tomocam explain` (being built: see the issue tracker)."""

from __future__ import annotations

from tomocam.errors import TomocamError


def explain() -> None:
    """Not built yet."""
    raise TomocamError("'tomocam explain' is not built yet")
