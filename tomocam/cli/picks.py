"""`tomocam picks` (being built: see the issue tracker)."""

from __future__ import annotations

from tomocam.errors import TomocamError


def picks() -> None:
    """Not built yet."""
    raise TomocamError("'tomocam picks' is not built yet")
