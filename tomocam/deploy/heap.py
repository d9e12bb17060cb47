"""The C heap of the processes that run explain tasks: memory a task frees is kept for the next task.

glibc's malloc serves every block above its mmap threshold (128 KiB at first, raised as blocks are freed) with
fresh pages from the kernel and gives them back on ``free``; each Dask worker thread also gets a heap of its own
(an arena, at most 64 MiB a block, larger blocks mmapped). A phase-2 task allocates tens of MB of tile maps and
matrix products, so every task paid a page fault on each 4 KiB page of them; keeping freed memory halves a
phase-2 task's time and lowers the peak (one arena instead of one per thread; measured: docs/architecture.md,
"Design decisions").

Dask's Nanny starts worker processes with ``MALLOC_TRIM_THRESHOLD_=65536`` (give memory back early) for the same
reason the defaults exist: long-lived workers whose memory should shrink between jobs. An explain worker lives for
one run, whose peak is set by its largest task, so keeping freed memory costs nothing there.
"""

from __future__ import annotations

import ctypes
import sys

from distributed import WorkerPlugin

#: mallopt(3) parameters and tomocam's values: one arena for all threads; blocks up to 64 MiB from the heap (a
#: phase-2 task reads maps in groups of at most 48 MiB, :data:`tomocam.pipeline.stitch_boxes.MAPS_BYTES`); free
#: memory at the top of the heap returned beyond 64 MiB, so a run's memory still follows its largest task.
_SETTINGS = {
    -8: 1,  # M_ARENA_MAX
    -3: 64 << 20,  # M_MMAP_THRESHOLD
    -1: 64 << 20,  # M_TRIM_THRESHOLD
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
