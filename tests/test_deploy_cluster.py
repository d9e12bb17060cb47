"""The local GPU cluster's plumbing, exercised without a GPU: one worker per device, each seeing only its own
(``CUDA_VISIBLE_DEVICES``) and advertising ``GPU=1``, so that phase-1 tasks ask for a share of that resource and
a GPU worker runs ``GPU_TASKS`` of them at once."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tomocam.deploy.cluster import GPU_TASKS, _gpu_cluster, gpu_worker_threads, phase1_resources


def _visible_devices(_task: int = 0) -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


def _warm() -> bool:
    import sys

    return {"torch", "tomocam.pipeline.explain_tiles", "tomocam.pipeline.stitch_boxes"} <= set(sys.modules)


@pytest.mark.slow
def test_gpu_cluster_gives_each_worker_its_own_device_and_the_gpu_resource():
    from distributed import Client

    with _gpu_cluster(2) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        assert sorted(client.run(_visible_devices).values()) == ["0", "1"]
        assert all(client.run(_warm).values())  # the warm-up preload ran before each worker registered
        assert phase1_resources(client) == {"GPU": 1 / GPU_TASKS}
        threads = [w["nthreads"] for w in client.scheduler_info()["workers"].values()]
        assert threads == [gpu_worker_threads(2, os.cpu_count() or 1)] * 2
        seen = client.gather([client.submit(_visible_devices, i, resources={"GPU": 1}, pure=False) for i in range(4)])
        assert set(seen) <= {"0", "1"}


@pytest.mark.parametrize(("gpus", "cores", "threads"), [(1, 16, 16), (4, 16, 4), (4, 2, 1), (0, 8, 8)])
def test_gpu_workers_share_the_cores(gpus, cores, threads):
    assert gpu_worker_threads(gpus, cores) == threads


_RUNNING = {"now": 0, "most": 0}
_RUNNING_LOCK = threading.Lock()


def _count_running(_task: int) -> None:
    with _RUNNING_LOCK:
        _RUNNING["now"] += 1
        _RUNNING["most"] = max(_RUNNING["most"], _RUNNING["now"])
    time.sleep(0.2)
    with _RUNNING_LOCK:
        _RUNNING["now"] -= 1


def test_a_gpu_worker_runs_gpu_tasks_phase1_tasks_at_once():
    """With more threads than ``GPU_TASKS``, the worker still runs exactly that many phase-1 tasks together: the
    others wait, while the threads left over stay free for phase 2."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=GPU_TASKS + 3, processes=False, dashboard_address=":0",
                      resources={"GPU": 1}) as cluster, Client(cluster) as client:
        resources = phase1_resources(client)
        client.gather([client.submit(_count_running, i, resources=resources, pure=False) for i in range(3 * GPU_TASKS)])
    assert _RUNNING["most"] == GPU_TASKS
