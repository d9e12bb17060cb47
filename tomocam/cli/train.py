"""`tomocam train` (being built: see the issue tracker)."""

from __future__ import annotations

from tomocam.errors import TomocamError


def train() -> None:
    """Not built yet."""
    raise TomocamError("'tomocam train' is not built yet")
