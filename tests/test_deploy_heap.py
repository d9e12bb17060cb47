"""Workers keep the memory their tasks free (:mod:`tomocam.deploy.heap`): a large block freed and allocated again
costs no new page faults, and the plugin applies this in every worker process."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")

_FAULTS = """
import resource, sys
import numpy as np
from tomocam.deploy.heap import keep_freed_memory
getattr(np, "_core", getattr(np, "core", None)).multiarray._set_madvise_hugepage(False)  # count 4 KiB pages
if sys.argv[1] == "keep":
    assert keep_freed_memory() and keep_freed_memory()  # applied, and again a no-op
def faults_of_a_40_mib_block() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(10 << 20, np.float32)  # allocated, every page written, freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_a_40_mib_block()
print(faults_of_a_40_mib_block())
"""


def _second_allocation_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@glibc
def test_a_freed_block_is_reused_without_page_faults():
    assert _second_allocation_faults("default") > 8000  # 10240 pages of 4 KiB, mapped afresh each time
    assert _second_allocation_faults("keep") < 100


@glibc
@pytest.mark.slow
def test_the_plugin_applies_it_in_every_worker_process():
    from distributed import Client, LocalCluster

    from tomocam.deploy import heap

    def applied() -> bool:
        from tomocam.deploy import heap

        return heap._applied

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            assert set(client.run(applied).values()) == {False}
            client.register_plugin(heap.KeepFreedMemory())
            assert set(client.run(applied).values()) == {True}
