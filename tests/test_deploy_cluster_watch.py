"""The watch over ``--cluster slurm`` worker jobs (:class:`tomocam.deploy.cluster.WorkerJobsWatch`) against a real
in-process Dask scheduler without workers (where a lost worker's tasks wait) and a stand-in for SLURM's queue."""

from __future__ import annotations

import time
from concurrent.futures import CancelledError
from types import SimpleNamespace

import pytest

from tomocam.deploy import slurm
from tomocam.deploy.cluster import WorkerJobsWatch


@pytest.fixture(scope="module")
def workerless():
    """A client whose scheduler has no worker: submitted tasks wait, as after every worker job died."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def jobs(*ids: str | None) -> SimpleNamespace:
    """A stand-in for a dask-jobqueue cluster: its ``workers`` are jobs with SLURM ids (None: being submitted)."""
    return SimpleNamespace(workers={f"w{i}": SimpleNamespace(job_id=job) for i, job in enumerate(ids)})


def test_a_run_waiting_on_lost_workers_fails_within_two_looks(workerless, monkeypatch):
    monkeypatch.setattr(slurm, "active_jobs", lambda ids: set())  # squeue lists none of them
    future = workerless.submit(sum, [1, 2], pure=False)
    start = time.monotonic()
    with WorkerJobsWatch(workerless, jobs("11", "12"), poll=0.2) as watch, pytest.raises(CancelledError):
        future.result(timeout=30)
    assert 0.35 < time.monotonic() - start < 10
    assert watch.lost is not None and "every SLURM worker job (11, 12) ended" in watch.lost


def test_jobs_forgotten_by_jobqueue_still_count(workerless, monkeypatch):
    """dask-jobqueue drops a job from ``cluster.workers`` some seconds after its worker left."""
    monkeypatch.setattr(slurm, "active_jobs", lambda ids: set())
    cluster = jobs("21")
    future = workerless.submit(sum, [5, 6], pure=False)
    with WorkerJobsWatch(workerless, cluster, poll=0.2) as watch:
        time.sleep(0.3)  # one look saw the job
        cluster.workers.clear()
        with pytest.raises(CancelledError):
            future.result(timeout=30)
    assert watch.lost is not None and "(21)" in watch.lost


@pytest.mark.parametrize(
    ("active", "ids"),
    [(None, ("11",)), ({"12"}, ("11", "12")), (set(), ("11", None))],
    ids=["slurm unreachable", "one job still runs", "a job being submitted"],
)
def test_the_watch_waits_while_a_job_may_still_come(workerless, monkeypatch, active, ids):
    monkeypatch.setattr(slurm, "active_jobs", lambda asked: active)
    future = workerless.submit(sum, [3, 4], pure=False)
    with WorkerJobsWatch(workerless, jobs(*ids), poll=0.05) as watch:
        time.sleep(0.5)
    assert watch.lost is None and future.status == "pending"
    future.cancel()
