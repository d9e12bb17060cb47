"""`tomocam evaluate` (being built: see the issue tracker)."""

from __future__ import annotations

from tomocam.errors import TomocamError


def evaluate() -> None:
    """Not built yet."""
    raise TomocamError("'tomocam evaluate' is not built yet")
