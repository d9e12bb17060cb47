"""One error hierarchy for tomocam.

Every error a user can cause derives from :class:`TomocamError` and also from the builtin it refines, so that
library callers can catch ``ValueError`` or ``OSError`` as usual. Messages quote the path or name involved and
say what was expected and what was found; the CLI prints them as one red line and exits non-zero.
"""

from __future__ import annotations


class TomocamError(Exception):
    """Base class of every error that tomocam raises on purpose."""

    exit_code: int = 1


class InputError(TomocamError, ValueError):
    """An input volume or dataset is unusable: not an MRC, truncated, wrong dtype, NaNs, too small..."""

    exit_code = 2


class CheckpointError(TomocamError, ValueError):
    """A model file is not a tomocam checkpoint, or names an architecture that is not registered."""

    exit_code = 2


class LayerError(TomocamError, LookupError):
    """A layer name is unknown, or the layer cannot be explained (e.g. its output has no spatial axes)."""

    exit_code = 2


class ClassError(TomocamError, LookupError):
    """A class name or index is not one of the model's classes."""

    exit_code = 2


class OutputError(TomocamError, OSError):
    """An output cannot be written: it exists already, the folder is not writable, the disk is full..."""

    exit_code = 3


class Interrupted(TomocamError):
    """A run was stopped by Ctrl-C or SIGINT; the message says what was kept and how to continue."""

    exit_code = 130  # 128 + SIGINT, what a shell reports for a process stopped by Ctrl-C
