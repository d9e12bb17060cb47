"""One error hierarchy for tomocam.

Every error a user can cause derives from :class:`TomocamError` and also from the builtin it refines, so that
library callers can catch ``ValueError`` or ``OSError`` as usual. Messages quote the path or name involved and
say what was expected and what was found; the CLI prints them as one red line and exits non-zero.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator


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


class ClusterError(TomocamError, RuntimeError):
    """The cluster a run depends on is gone: every SLURM worker job ended while work was left."""

    exit_code = 4


class StoreLocked(OutputError):
    """Another run holds the store's writer lock (:mod:`tomocam.store.lock`)."""


#: Each machine fault in a user's words, by errno; any other errno is reported with the OS's words only.
_FAULT_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EIO: "the storage reported an I/O error",
    errno.EROFS: "the filesystem is read-only",
    errno.ENOENT: "a file or folder vanished or is missing",
}

#: How an errno travels inside another exception's message: Rust's ``io::Error`` (zarrs: ``No space left on device
#: (os error 28)``, or its debug form ``Os { code: 28, ... }``) and Python's ``OSError`` text (``[Errno 28] ...``).
_ERRNO_IN_TEXT = re.compile(r"\(os error (\d+)\)|\bOs \{ code: (\d+)|\[Errno (\d+)\]")


def _causes(err: BaseException) -> Iterator[BaseException]:
    """``err``, its causes and contexts, and the members of exception groups, each once, depth first."""
    seen: set[int] = set()
    stack = [err]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(getattr(current, "exceptions", ()) or ())  # an ExceptionGroup (zarr's async writes)
        stack.extend(e for e in (current.__context__, current.__cause__) if e is not None)


def _errno_of(err: BaseException) -> int | None:
    if isinstance(err, OSError) and err.errno:
        return err.errno
    match = _ERRNO_IN_TEXT.search(str(err))
    return int(next(g for g in match.groups() if g)) if match else None


def os_fault(err: BaseException) -> OutputError | None:
    """The OS error behind ``err`` as one :class:`OutputError` carrying its ``errno`` (and naming the file in its
    message), or None when ``err`` carries none.

    ``err`` may be an ``OSError``, an exception whose message carries an errno (zarrs reports a full disk as
    ``RuntimeError: No space left on device (os error 28)``), or one that has either among its causes and
    contexts, as a Dask worker's exception re-raised by the client has. The errors are recognised by the errno
    they carry, not by their type, so a library that changes its exception classes is still understood.
    """
    for cause in _causes(err):
        number = _errno_of(cause)
        if number is None:
            continue
        filename = getattr(cause, "filename", None) if isinstance(cause, OSError) else None
        reason = os.strerror(number)
        hint = _FAULT_HINTS.get(number)
        where = f": '{filename}'" if filename else ""
        fault = OutputError(f"{hint} ({reason}){where}" if hint else f"{reason}{where}")
        fault.errno = number  # strerror and filename stay unset: they would replace the message in str()
        return fault
    if isinstance(err, OSError):  # an OSError without an errno: its own words
        return OutputError(str(err))
    return None


def warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 line: str | None = None) -> str:
    """A warning as one line, ``Warning: <message> (<category>)``: a replacement for
    :func:`warnings.formatwarning`, which quotes the library's source file and line, a detail that tells a user
    of the command line nothing."""
    text = " ".join(str(message).split())
    return f"Warning: {text} ({category.__name__})\n"
