"""Dask clients for explain runs: a local cluster sized to the machine, an existing cluster through its
scheduler file, or SLURM worker jobs (:func:`tomocam.pipeline.slurm.slurm_cluster`, from a login node).

GPU workers advertise the resource ``GPU=1`` and phase-1 tasks ask for it; each GPU worker sees one device
(``CUDA_VISIBLE_DEVICES``), so tasks always use ``cuda:0``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from tomocam.errors import InputError


@dataclass(frozen=True)
class ClusterInfo:
    """How the client's cluster was made, and the torch threads each phase-1 task should use."""

    kind: str
    n_workers: int
    torch_threads: int | None


def phase1_resources(client) -> dict[str, int] | None:
    """``{"GPU": 1}`` when every worker advertises a GPU, else no resource restriction."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    if workers and all(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers):
        return {"GPU": 1}
    return None


def cpu_layout(cores: int, workers: int | None) -> tuple[int, int]:
    """``(workers, torch threads per worker)`` on a CPU machine: by default one worker per 8 cores."""
    n = workers or max(1, cores // 8)
    return n, max(1, cores // n)


def _quiet() -> None:
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def workers_ignore_interrupts() -> Iterator[None]:
    """Start worker processes inside this block so that they ignore SIGINT.

    Ctrl-C in a terminal (or ``kill -INT -PGID``) reaches every process of the group. A worker process that
    inherits an ignored SIGINT keeps ignoring it (Python installs its KeyboardInterrupt handler only over the
    default disposition), so only the client sees the interrupt: it stops, and closing the cluster shuts the
    workers down quietly instead of each printing its own traceback. Outside the main thread signals cannot be
    changed and the block does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _gpu_cluster(n: int):
    """One worker process per GPU, each seeing only its own device."""
    from distributed import Nanny, Scheduler, SpecCluster

    workers = {
        f"gpu-{i}": {
            "cls": Nanny,
            "options": {"nthreads": 1, "resources": {"GPU": 1}, "env": {"CUDA_VISIBLE_DEVICES": str(i)}},
        }
        for i in range(n)
    }
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.CRITICAL)


@contextlib.contextmanager
def connect(
    *, device: str, workers: int | None = None, scheduler_file: str | None = None, cluster: str | None = None
) -> Iterator[tuple[object, ClusterInfo]]:
    """A Dask client for a run (closed on exit) and a :class:`ClusterInfo`.

    ``scheduler_file`` joins a running cluster; ``cluster="slurm"`` asks SLURM for worker jobs; otherwise a
    local cluster: one worker per GPU on ``cuda``, else ``workers`` CPU workers (default one per 8 cores)
    sharing the cores between torch threads.
    """
    from distributed import Client, LocalCluster

    _quiet()
    if scheduler_file:
        if not os.path.isfile(scheduler_file):
            raise InputError(f"scheduler file '{scheduler_file}' does not exist")
        with Client(scheduler_file=scheduler_file) as client:
            n = len(client.scheduler_info(n_workers=-1)["workers"])
            yield client, ClusterInfo("scheduler-file", n, None)
        return
    if cluster == "slurm":
        from tomocam.pipeline.slurm import slurm_cluster

        overrides = {"gpus_per_node": 0} if device == "cpu" else {}
        with slurm_cluster(jobs=workers, **overrides) as slurm, Client(slurm) as client:
            client.wait_for_workers(1)
            yield client, ClusterInfo("slurm", len(slurm.worker_spec), None)
        return
    if cluster not in (None, "local"):
        raise InputError(f"unknown --cluster '{cluster}'; expected local or slurm")
    if device.startswith("cuda"):
        import torch

        n = workers or torch.cuda.device_count()
        with workers_ignore_interrupts():
            gpu = _gpu_cluster(n)
        with gpu, Client(gpu) as client:
            yield client, ClusterInfo("local-gpu", n, None)
        return
    n, threads = cpu_layout(os.cpu_count() or 1, workers)
    with workers_ignore_interrupts():
        local = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=n > 1, dashboard_address=":0", silence_logs=logging.CRITICAL
        )
    with local, Client(local) as client:
        _quiet()  # the cluster sets its own log levels on start
        yield client, ClusterInfo("local-cpu", n, threads)
