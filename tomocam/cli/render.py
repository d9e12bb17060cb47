"""`tomocam render` (being built: see the issue tracker)."""

from __future__ import annotations

from tomocam.errors import TomocamError


def render() -> None:
    """Not built yet."""
    raise TomocamError("'tomocam render' is not built yet")
