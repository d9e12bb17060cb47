"""`tomocam demo` (being built: see the issue tracker)."""

from __future__ import annotations

from tomocam.errors import TomocamError


def demo() -> None:
    """Not built yet."""
    raise TomocamError("'tomocam demo' is not built yet")
