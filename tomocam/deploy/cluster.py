"""Dask clients for explain runs: a local cluster sized to the machine, an existing cluster through its
scheduler file, or SLURM worker jobs (:func:`tomocam.deploy.slurm.slurm_cluster`, from a login node).

GPU workers advertise the resource ``GPU=1`` and phase-1 tasks ask for a share of it (:data:`GPU_TASKS` run at
once per GPU); each GPU worker sees one device (``CUDA_VISIBLE_DEVICES``), so tasks always use ``cuda:0``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tomocam.deploy.warmup import worker_preloads
from tomocam.errors import ClusterError, InputError


@dataclass(frozen=True)
class ClusterInfo:
    """How the client's cluster was made, and the torch threads each phase-1 task should use."""

    kind: str
    n_workers: int
    torch_threads: int | None


#: Phase-1 tasks a GPU worker runs at once. One computes on the GPU (the model's lock serialises that part) while
#: the others read their slabs and write their results, so the GPU does not wait for the host between blocks.
GPU_TASKS = 4


def phase1_resources(client) -> dict[str, float] | None:
    """``{"GPU": 1 / GPU_TASKS}`` when every worker advertises a GPU (``GPU=1``), else no resource restriction."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    if workers and all(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers):
        return {"GPU": 1 / GPU_TASKS}
    return None


def cpu_layout(cores: int, workers: int | None) -> tuple[int, int]:
    """``(workers, torch threads per worker)`` on a CPU machine: by default one worker per 8 cores."""
    n = workers or max(1, cores // 8)
    return n, max(1, cores // n)


def _quiet() -> None:
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def _quiet_worker_processes() -> Iterator[None]:
    """Worker processes started by Nannies made inside this block log only errors of ``distributed``, as the
    client does (:func:`_quiet`): the setting must be in their environment before they import ``distributed``,
    hence Dask's ``pre-spawn-environ`` rather than the Nanny's ``env``."""
    import dask

    env = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), "DASK_LOGGING__DISTRIBUTED": "error"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
        yield


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


def gpu_worker_threads(n_gpus: int, cores: int) -> int:
    """Threads of each GPU worker: its share of the cores. The ``GPU=1`` resource runs :data:`GPU_TASKS` phase-1
    tasks per worker at a time; the other threads stitch (phase 2) beside them instead of waiting for the GPU."""
    return max(1, cores // max(1, n_gpus))


def _gpu_cluster(n: int):
    """One worker process per GPU, each seeing only its own device, with its share of the CPU cores."""
    from distributed import Nanny, Scheduler, SpecCluster

    threads = gpu_worker_threads(n, os.cpu_count() or 1)
    options = {"nthreads": threads, "resources": {"GPU": 1}, "preload": worker_preloads()}
    workers = {
        f"gpu-{i}": {"cls": Nanny, "options": {**options, "env": {"CUDA_VISIBLE_DEVICES": str(i)}}} for i in range(n)
    }
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    with _quiet_worker_processes():
        return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.CRITICAL)


def _wait_for_slurm_workers(client, cluster, poll: float = 1.0, submit_timeout: float = 120.0) -> None:
    """Return once a Dask worker of ``cluster``'s SLURM jobs has joined; :class:`InputError` as soon as every
    worker job has ended without one joining (it failed at start), or when no job was submitted in time.

    Jobs that wait in the queue are waited for: pending is not failing.
    """
    from tomocam.deploy.slurm import active_jobs

    start = time.monotonic()
    while not client.scheduler_info(n_workers=-1)["workers"]:
        ids = [str(job.job_id) for job in cluster.workers.values() if getattr(job, "job_id", None)]
        if not ids and time.monotonic() - start > submit_timeout:
            raise InputError(f"no SLURM worker job was submitted within {submit_timeout:.0f} s")
        if ids and active_jobs(ids) == set():
            time.sleep(poll)  # a worker may have joined just before its job was listed as ended
            if client.scheduler_info(n_workers=-1)["workers"]:
                return
            raise InputError(
                f"SLURM worker job(s) {', '.join(ids)} ended before a Dask worker joined; their output is in "
                f"slurm-<job id>.out in {os.getcwd()}"
            )
        time.sleep(poll)


#: Seconds between two looks at the SLURM queue while a ``--cluster slurm`` run works: a run whose worker jobs have
#: all ended stops within about two of these (squeue is cheap, but sites ask for no more than a few calls a minute).
WORKER_JOBS_POLL_SECONDS = 15.0


class WorkerJobsWatch:
    """Watches the worker jobs of a running ``--cluster slurm`` run from a daemon thread.

    Dask waits forever for workers that will never come back: the tasks of a worker whose job was cancelled, ran
    out of time or lost its node go back to the scheduler, which holds them for the next worker. When on two looks
    in a row SLURM lists none of the worker jobs as pending or running and the scheduler has no worker left, the
    watch cancels every task of the client, so that whatever the run waits on fails at once, and records why
    (:attr:`lost`); :func:`connect` then raises :class:`ClusterError` with that one line. SLURM not answering is
    never taken for jobs having ended. What the run wrote stays, for ``--resume``.
    """

    def __init__(self, client, cluster, poll: float = WORKER_JOBS_POLL_SECONDS) -> None:
        self.client, self.cluster, self.poll = client, cluster, poll
        self.lost: str | None = None
        self._seen: set[str] = set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tomocam-worker-jobs", daemon=True)

    def __enter__(self) -> WorkerJobsWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join()

    def all_gone(self) -> list[str] | None:
        """Every worker job's id seen so far when all have ended and no worker is connected, else None.

        The ids are remembered: dask-jobqueue forgets a job some seconds after its worker left.
        """
        from tomocam.deploy.slurm import active_jobs

        jobs = list(self.cluster.workers.values())
        ids = [str(job.job_id) for job in jobs if getattr(job, "job_id", None)]
        self._seen.update(ids)
        if not self._seen or len(ids) < len(jobs):  # a job is being submitted
            return None
        seen = sorted(self._seen, key=lambda i: (len(i), i))
        if active_jobs(seen) != set() or self.client.scheduler_info(n_workers=-1)["workers"]:
            return None
        return seen

    def _watch(self) -> None:
        from distributed import Future

        looks = 0
        while not self._stopped.wait(self.poll):
            try:
                ids = self.all_gone()
            except Exception:  # the client is closing: the run is over anyway
                return
            looks = looks + 1 if ids else 0
            if ids and looks >= 2:
                self.lost = (
                    f"every SLURM worker job ({', '.join(ids)}) ended while the run still had work (cancelled, out of "
                    f"time or a failed node; see slurm-<job id>.out in {os.getcwd()})"
                )
                keys = list(self.client.futures)
                self.client.cancel([Future(key, self.client) for key in keys], reason="worker jobs lost",
                                   msg=self.lost)
                return


@contextlib.contextmanager
def connect(
    *, device: str, workers: int | None = None, scheduler_file: str | None = None, cluster: str | None = None
) -> Iterator[tuple[object, ClusterInfo]]:
    """A Dask client for a run (closed on exit) and a :class:`ClusterInfo`.

    ``scheduler_file`` joins a running cluster; ``cluster="slurm"`` asks SLURM for ``workers`` worker jobs
    (default one per GPU of a node) built from the SLURM settings, CPU workers when ``device`` is ``cpu``, after
    checking that SLURM would accept them, and fails with one line if they end before a worker joins, or later if
    they all end while the run works (:class:`WorkerJobsWatch`); otherwise a
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
        from tomocam.deploy.slurm import check_submittable, load_slurm_config, slurm_cluster, workers_per_node

        settings = load_slurm_config()
        overrides = {"gpus_per_node": 0} if device == "cpu" else {}
        with slurm_cluster(settings, jobs=0, **overrides) as slurm:
            check_submittable(slurm.job_script())
            slurm.scale(jobs=workers or workers_per_node({**settings, **overrides}))
            with Client(slurm) as client:
                _wait_for_slurm_workers(client, slurm)
                with WorkerJobsWatch(client, slurm) as watch:
                    try:
                        yield client, ClusterInfo("slurm", len(slurm.worker_spec), None)
                    except Exception as err:
                        if watch.lost is None:
                            raise
                        raise ClusterError(watch.lost) from err
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
    processes = n > 1  # one worker runs in this process, already warm
    with workers_ignore_interrupts(), _quiet_worker_processes():
        local = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=":0",
            silence_logs=logging.CRITICAL, **({"preload": worker_preloads()} if processes else {}),
        )
    with local, Client(local) as client:
        _quiet()  # the cluster sets its own log levels on start
        yield client, ClusterInfo("local-cpu", n, threads)
