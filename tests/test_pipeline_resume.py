"""Resume: a run killed with SIGKILL halfway, rerun with --resume, equals an uninterrupted run and recomputes
only the blocks that were not done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin
from explain_models import matched_filter_checkpoint, particles_volume, write_mrc

from tomocam.errors import InputError
from tomocam.pipeline import ExplainConfig, explain_tomogram
from tomocam.store import open_store

TESTS = Path(__file__).parent


def _done_count(store: Path) -> int:
    try:
        return int(np.asarray(zarr.open_array(str(store / "tiles" / "done"), mode="r")[...]).sum())
    except Exception:
        return 0


@pytest.mark.slow
def test_killed_run_resumes_to_an_identical_store(tmp_path):
    model = matched_filter_checkpoint(tmp_path / "slow.pt", delay=0.15)  # 0.15 s per batch: killable halfway
    volume, _ = particles_volume((40, 40, 48), n=8, seed=2)
    mrc = write_mrc(tmp_path / "t.mrc", volume)
    store = tmp_path / "killed.zarr"
    args = [str(mrc), "--model", str(model), "-o", str(store), "--block", "2", "--batch-size", "4",
            "--workers", "1", "--no-progress"]
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import explain_models; "
            "from tomocam.cli.main import main; sys.argv = ['tomocam', 'explain', *sys.argv[1:]]; main()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(TESTS), *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    total = 2 * 2 * 3  # 4 x 4 x 5 tiles in blocks of 2
    deadline = time.monotonic() + 120
    while _done_count(store) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = _done_count(store)
    assert 0 < done_at_kill < total, proc.stderr.read().decode()
    with pytest.raises(InputError, match="incomplete"):
        open_store(store)

    config = ExplainConfig(tomogram=str(mrc), output=str(store), model=str(model), block=2, batch_size=4, resume=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cl, Client(cl) as c:
        resumed = explain_tomogram(config, client=c)
        fresh = explain_tomogram(
            ExplainConfig(tomogram=str(mrc), output=str(tmp_path / "fresh.zarr"), model=str(model), block=2,
                          batch_size=4),
            client=c,
        )
    assert resumed.blocks_total == total
    assert resumed.blocks_skipped == done_at_kill and resumed.blocks_computed == total - done_at_kill
    a, b = open_store(store), open_store(fresh.store)
    np.testing.assert_array_equal(a.heatmap()[...], b.heatmap()[...])
    np.testing.assert_array_equal(a.logits[...], b.logits[...])
    np.testing.assert_array_equal(a.labels()[...], b.labels()[...])


class ImportTestModels(WorkerPlugin):
    """Worker plugin: makes the test architectures importable in every worker process, restarted ones too."""

    name = "tomocam-test-models"

    def setup(self, worker) -> None:
        if str(TESTS) not in sys.path:
            sys.path.insert(0, str(TESTS))
        import explain_models  # noqa: F401  (registers the matched-filter architecture)


@pytest.mark.slow
def test_killed_worker_tasks_are_retried(tmp_path):
    model = matched_filter_checkpoint(tmp_path / "slow.pt", delay=0.15)
    volume, _ = particles_volume((40, 40, 48), n=8, seed=2)
    mrc = write_mrc(tmp_path / "t.mrc", volume)
    store = tmp_path / "killed-worker.zarr"
    config = ExplainConfig(tomogram=str(mrc), output=str(store), model=str(model), block=2, batch_size=4)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl, \
            Client(cl) as c:
        c.register_plugin(ImportTestModels())
        outcome: dict = {}
        runner = threading.Thread(target=lambda: outcome.setdefault("summary", explain_tomogram(config, client=c)))
        runner.start()
        deadline = time.monotonic() + 120
        while _done_count(store) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = c.run(os.getpid)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)  # the nanny restarts it; its tasks go to the other worker or the new one
        runner.join(timeout=300)
        assert not runner.is_alive() and "summary" in outcome
        new_pids = c.run(os.getpid)
        fresh = explain_tomogram(
            ExplainConfig(tomogram=str(mrc), output=str(tmp_path / "fresh.zarr"), model=str(model), block=2,
                          batch_size=4),
            client=c,
        )
    assert victim not in new_pids.values()  # the worker really died
    assert outcome["summary"].blocks_computed == outcome["summary"].blocks_total == 12
    a, b = open_store(store), open_store(fresh.store)
    np.testing.assert_allclose(a.heatmap()[...], b.heatmap()[...], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(a.labels()[...], b.labels()[...])


def test_done_markers_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """The resume record goes through zarr-python's pipeline, which writes a chunk to a temporary file and renames
    it (zarrs writes chunks in place, so a kill could leave a cut-short marker that --resume cannot read); the maps
    go through zarrs."""
    import zarr.storage._local as local

    written: list[str] = []
    put = local._put

    def recording(path, value, exclusive=False):
        written.append(str(path))
        return put(path, value, exclusive=exclusive)

    monkeypatch.setattr(local, "_put", recording)
    volume, _ = particles_volume((24, 24, 32), n=4, seed=1)
    model = matched_filter_checkpoint(tmp_path / "mf.pt")
    config = ExplainConfig(tomogram=str(write_mrc(tmp_path / "t.mrc", volume)), output=str(tmp_path / "t.zarr"),
                           model=str(model), tile=16, stride=8, block=2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            explain_tomogram(config, client=client)
    done = [p for p in written if "/tiles/done/c/" in p]
    assert len(done) == _done_count(tmp_path / "t.zarr") > 1  # every block's marker, atomically
    assert not [p for p in written if "/tiles/respond/c/" in p]  # the maps through zarrs
