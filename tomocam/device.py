"""The ``--device`` option of every command (explain, train, evaluate): one help text and one resolver.

:func:`resolve_device` turns the option into a torch device; :func:`local_worker_device` maps it to what each
worker of ``tomocam explain`` on this machine uses (workers see one GPU each); SLURM workers:
:func:`tomocam.deploy.slurm.slurm_worker_device`.

torch is imported inside :func:`resolve_device`, so the CLI can show :data:`DEVICE_HELP` without loading it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from tomocam.errors import InputError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

DEVICE_HELP = "auto (a GPU when one is visible, else the CPU), cpu, cuda or cuda:N."


def resolve_device(name: str) -> torch.device:
    """The torch device that ``name`` (see :data:`DEVICE_HELP`) means on this machine.

    Raises :class:`InputError` for a name torch does not know, a device type other than cpu or cuda, or a CUDA
    device that is not visible here (no GPU, or an index beyond the GPUs there are).
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}; expected {DEVICE_HELP}") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"unsupported device {name!r}; expected {DEVICE_HELP}")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {name!r} asked for, but no CUDA device is available here")
        if device.index is not None and device.index >= count:
            raise InputError(f"device {name!r} asked for, but only {count} CUDA device(s) are visible here")
    return device


def local_worker_device(name: str) -> str:
    """The device an explain worker uses for ``--device name``: ``cpu``, or ``cuda:0`` for a GPU.

    Every GPU worker sees only its own GPU (``CUDA_VISIBLE_DEVICES``), as ``cuda:0``; which GPUs a run uses is
    chosen with ``CUDA_VISIBLE_DEVICES`` (or the cluster's workers), so ``cuda:N`` other than 0 is refused.
    """
    device = resolve_device(name)
    if device.type == "cpu":
        return "cpu"
    if device.index:
        raise InputError(
            f"--device {name}: explain runs one worker per visible GPU, each seeing its own as cuda:0; "
            "choose the GPUs with CUDA_VISIBLE_DEVICES"
        )
    return "cuda:0"


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the torch work inside this block on the calling thread alone, then restore the thread count.

    For small side computations (the plan's probe, a worker's warm-up) in a thread other than the one that runs
    the tasks: torch's CPU kernels run on an OpenMP team per calling thread, and once two threads of a process
    have teams, the second's work slows down.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def map_on_threads(work: Callable[[T], object], items: Iterable[T], threads: int) -> None:
    """Call ``work(item)`` for every item, on ``threads`` threads each running torch on itself alone.

    For a task made of many small independent pieces (the labels' sub-boxes): ops of that size leave torch's own
    threads mostly waiting, while pieces side by side keep every core busy. ``threads <= 1`` runs
    them in the calling thread, with its torch threads. An error in any piece is raised here.
    """
    if threads <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="tomocam-piece", initializer=_one_thread) as pool:
        for _ in pool.map(work, items):
            pass
