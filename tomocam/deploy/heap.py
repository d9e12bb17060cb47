"""The C heap of the processes that run explain tasks: memory a task frees is kept for the next task.

glibc's malloc serves every block above its mmap threshold (128 KiB at first, raised as blocks are freed) with
fresh pages from the kernel and gives them back on ``free``; each Dask worker thread also gets a heap of its own
(an arena, at most 64 MiB a block, larger blocks mmapped). A phase-2 task allocates tens of MB of tile maps and
matrix products, so every task paid a page fault on each 4 KiB page of them. Measured on the project's 2-core
machine, stitching one ceiling-model box (784 tiles of 23 x 10^3 maps) four times in a worker thread: 114-136 ms
each with glibc's defaults, 53-80 ms with :func:`keep_freed_memory`, and a lower peak RSS (549 -> 470 MB: one arena
instead of one per thread).

Dask's Nanny starts worker processes with ``MALLOC_TRIM_THRESHOLD_=65536`` (give memory back early) for the same
reason the defaults exist: long-lived workers whose memory should shrink between jobs. An explain worker lives for
one run, whose peak is set by its largest task, so keeping freed memory costs nothing there.
"""

from __future__ import annotations

import ctypes
import sys

from distributed import WorkerPlugin

#: mallopt(3) parameters and tomocam's values: one arena for all threads; blocks up to 32 MiB (glibc's own upper
#: limit of the dynamic threshold) from the heap; free memory returned only beyond 128 MiB at the top, and the heap
#: grown 64 MiB at a time.
_SETTINGS = {
    -8: 1,  # M_ARENA_MAX
    -3: 32 << 20,  # M_MMAP_THRESHOLD
    -1: 128 << 20,  # M_TRIM_THRESHOLD
    -2: 64 << 20,  # M_TOP_PAD
}

_applied = False


def keep_freed_memory() -> bool:
    """Apply the settings above to this process's glibc malloc, once; ``False`` where there is no glibc (macOS,
    musl) and nothing changes. Call it before the tasks' first large allocations: threads started afterwards share
    the one arena."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    _applied = all(mallopt(param, value) == 1 for param, value in _SETTINGS.items())
    return _applied


class KeepFreedMemory(WorkerPlugin):
    """Calls :func:`keep_freed_memory` in every worker process, in those that join later too (register it with
    ``client.register_plugin``)."""

    name = "tomocam-keep-freed-memory"

    def setup(self, worker) -> None:
        """Called by Dask in each worker process when the plugin is registered or the worker starts."""
        keep_freed_memory()
