"""The local GPU cluster's plumbing, exercised without a GPU: one worker per device, each seeing only its own
(``CUDA_VISIBLE_DEVICES``) and advertising ``GPU=1``, so that phase-1 tasks ask for that resource."""

from __future__ import annotations

import os

import pytest

from tomocam.deploy.cluster import _gpu_cluster, gpu_worker_threads, phase1_resources


def _visible_devices(_task: int = 0) -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


@pytest.mark.slow
def test_gpu_cluster_gives_each_worker_its_own_device_and_the_gpu_resource():
    from distributed import Client

    with _gpu_cluster(2) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        assert sorted(client.run(_visible_devices).values()) == ["0", "1"]
        assert phase1_resources(client) == {"GPU": 1}
        threads = [w["nthreads"] for w in client.scheduler_info()["workers"].values()]
        assert threads == [gpu_worker_threads(2, os.cpu_count() or 1)] * 2
        seen = client.gather([client.submit(_visible_devices, i, resources={"GPU": 1}, pure=False) for i in range(4)])
        assert set(seen) <= {"0", "1"}


@pytest.mark.parametrize(("gpus", "cores", "threads"), [(1, 16, 16), (4, 16, 4), (4, 2, 1), (0, 8, 8)])
def test_gpu_workers_share_the_cores(gpus, cores, threads):
    assert gpu_worker_threads(gpus, cores) == threads
