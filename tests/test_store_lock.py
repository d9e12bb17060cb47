"""The store's writer lock: taken atomically, refused naming its holder, released (also by a failing run), and
taken over with a warning from a holder that is gone (dead process, ended or requeued SLURM job)."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from tomocam.errors import OutputError, StoreLocked
from tomocam.store import lock as lock_module
from tomocam.store.lock import LOCK_NAME, UNREADABLE_STALE_SECONDS, Holder, StoreLock, read_holder


def dead_pid() -> int:
    """The id of a process that has ended (and is not reused this quickly)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_holder(store: Path, holder: Holder) -> Path:
    store.mkdir(parents=True, exist_ok=True)
    (store / LOCK_NAME).write_text(json.dumps(asdict(holder)))
    return store / LOCK_NAME


def test_the_lock_names_its_holder_and_goes_at_release(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    store = tmp_path / "t.zarr"
    with StoreLock(store, command="tomocam explain t.mrc") as me:
        held = read_holder(store / LOCK_NAME)
        assert held == me
        assert (held.host, held.pid, held.slurm_job, held.command) == (
            socket.gethostname(), os.getpid(), "4242", "tomocam explain t.mrc")
        assert held.started.endswith("+00:00")
        (store / "zarr.json").write_text("{}")  # the run writes its store
    assert not (store / LOCK_NAME).exists() and (store / "zarr.json").is_file()


def test_a_folder_made_for_the_lock_alone_goes_with_it(tmp_path):
    with StoreLock(tmp_path / "new.zarr"):
        assert (tmp_path / "new.zarr" / LOCK_NAME).is_file()
    assert not (tmp_path / "new.zarr").exists()  # a rerun is not refused as 'exists already'


def test_a_failing_run_releases_the_lock(tmp_path):
    with pytest.raises(ZeroDivisionError), StoreLock(tmp_path / "t.zarr"):
        (tmp_path / "t.zarr" / "zarr.json").write_text("{}")
        raise ZeroDivisionError
    assert not (tmp_path / "t.zarr" / LOCK_NAME).exists()


def test_a_second_writer_is_refused_in_one_line_naming_the_holder(tmp_path):
    store = tmp_path / "t.zarr"
    with StoreLock(store) as first:
        with pytest.raises(StoreLocked) as info:
            StoreLock(store).acquire()
        assert read_holder(store / LOCK_NAME) == first  # the first run's lock is untouched
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, OutputError) and info.value.exit_code == 3
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in message and str(store / LOCK_NAME) in message


def _hold(store: str, ready, release) -> None:
    with StoreLock(store):
        ready.set()
        release.wait(30)


def test_a_lock_held_by_another_live_process_is_refused(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path / "t.zarr"), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(StoreLocked, match=f"pid {holder.pid} "):
            StoreLock(tmp_path / "t.zarr").acquire()
    finally:
        release.set()
        holder.join(30)
    with StoreLock(tmp_path / "t.zarr"):  # released by its holder: free again
        pass


def test_a_dead_holder_on_this_host_is_taken_over_with_a_warning(tmp_path):
    gone = replace(Holder.this_process(), pid=dead_pid())
    write_holder(tmp_path / "t.zarr", gone)
    with pytest.warns(UserWarning, match=f"process {gone.pid} no longer exists"):
        me = StoreLock(tmp_path / "t.zarr").acquire()
    assert read_holder(tmp_path / "t.zarr" / LOCK_NAME) == me


@pytest.mark.parametrize(("running", "taken"), [(False, True), (True, False), (None, False)],
                         ids=["job ended", "job runs", "slurm unreachable"])
def test_a_holder_on_another_host_is_judged_by_its_slurm_job(tmp_path, monkeypatch, running, taken):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    asked = []
    other = replace(Holder.this_process(), host="node-17", pid=1, slurm_job="777")
    write_holder(tmp_path / "t.zarr", other)
    lock = StoreLock(tmp_path / "t.zarr", job_running=lambda job: asked.append(job) or running)
    if taken:
        with pytest.warns(UserWarning, match="SLURM job 777 no longer runs"):
            lock.acquire()
    else:
        with pytest.raises(StoreLocked, match=r"pid 1 on host node-17 \(SLURM job 777\)"):
            lock.acquire()
    assert asked and set(asked) == {"777"}


def test_an_earlier_run_of_a_requeued_job_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    write_holder(tmp_path / "t.zarr", replace(Holder.this_process(), host="node-3", slurm_restart=0))
    with pytest.warns(UserWarning, match="requeued"):
        StoreLock(tmp_path / "t.zarr").acquire()


def test_a_host_without_slurm_is_refused_with_the_file_to_remove(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    path = write_holder(tmp_path / "t.zarr", replace(Holder.this_process(), host="workstation", slurm_job=None))
    with pytest.raises(StoreLocked, match="if it is gone, remove"):
        StoreLock(tmp_path / "t.zarr").acquire()
    assert path.is_file()


def test_an_unreadable_lock_waits_until_it_is_old(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module.time, "sleep", lambda s: None)
    path = tmp_path / "t.zarr" / LOCK_NAME
    path.parent.mkdir()
    path.write_bytes(b"")  # a writer that died with a full disk, or one writing it this instant
    with pytest.raises(StoreLocked, match="cannot be read"):
        StoreLock(tmp_path / "t.zarr").acquire()
    old = time.time() - UNREADABLE_STALE_SECONDS - 5
    os.utime(path, (old, old))
    with pytest.warns(UserWarning, match="unreadable"):
        StoreLock(tmp_path / "t.zarr").acquire()


def test_release_leaves_a_lock_taken_over_by_another_run(tmp_path):
    first = StoreLock(tmp_path / "t.zarr")
    first.acquire()
    other = write_holder(tmp_path / "t.zarr", replace(Holder.this_process(), token="theirs"))
    first.release()
    assert read_holder(other).token == "theirs"


def _race(store: str, start, results) -> None:
    start.wait(30)
    try:
        with StoreLock(store):
            results.put("got")
            time.sleep(1.0)
    except StoreLocked:
        results.put("refused")


def test_of_runs_racing_for_a_stale_lock_exactly_one_wins(tmp_path):
    write_holder(tmp_path / "t.zarr", replace(Holder.this_process(), pid=dead_pid()))
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    racers = [ctx.Process(target=_race, args=(str(tmp_path / "t.zarr"), start, results)) for _ in range(4)]
    for p in racers:
        p.start()
    start.set()
    for p in racers:
        p.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in racers)
    assert outcomes == ["got", "refused", "refused", "refused"]


@pytest.mark.slurm
def test_a_lock_of_a_cancelled_slurm_job_is_taken_over(tmp_path, monkeypatch):
    """Against the real SLURM: a holder in a running job on another host is refused; once the job is cancelled,
    its lock is taken over."""
    from tomocam.deploy.slurm import job_running

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    job = subprocess.run(["sbatch", "--parsable", "--output=/dev/null", "--wrap", "sleep 120"], capture_output=True,
                         text=True, check=True, cwd=tmp_path)
    job_id = job.stdout.strip().split(";")[0]
    write_holder(tmp_path / "t.zarr", replace(Holder.this_process(), host="node-9", slurm_job=job_id))
    try:
        with pytest.raises(StoreLocked, match=f"SLURM job {job_id}"):
            StoreLock(tmp_path / "t.zarr", job_running=job_running).acquire()
    finally:
        subprocess.run(["scancel", job_id], check=True)
    deadline = time.monotonic() + 30
    while job_running(job_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job_running(job_id) is False and job_running("99999999") is False
    with pytest.warns(UserWarning, match=f"SLURM job {job_id} no longer runs"):
        StoreLock(tmp_path / "t.zarr", job_running=job_running).acquire()


def test_the_store_is_created_and_overwritten_around_its_lock(tmp_path):
    """The folder the lock made is no output yet; creating the store (built beside it, moved into place) and
    overwriting it keep the run's lock, and a run without a lock still replaces a folder whole."""
    import numpy as np
    from explain_models import tiny_cnn_checkpoint, write_mrc

    from tomocam.pipeline import ExplainConfig, make_plan
    from tomocam.store.create import check_output
    from tomocam.store.writer import StoreWriter

    mrc = write_mrc(tmp_path / "t.mrc", np.zeros((24, 24, 32), np.float32))
    store = tmp_path / "t.zarr"
    plan = make_plan(ExplainConfig(tomogram=str(mrc), output=str(store), model=str(tiny_cnn_checkpoint(
        tmp_path / "m.pt")), block=2, chunk=8, heatmap_step=1), str(store))
    for overwrite in (False, True):
        with StoreLock(store) as me:
            assert check_output(store, resume=False, overwrite=overwrite) == ("overwrite" if overwrite else "create")
            (store / "stale-chunk").write_text("x") if overwrite else None
            StoreWriter.open(plan.store_spec, resume=False, overwrite=overwrite, command="test")
            assert read_holder(store / LOCK_NAME) == me and (store / "zarr.json").is_file()
            assert not (store / "stale-chunk").exists() and not Path(f"{store}.partial").exists()
        assert not (store / LOCK_NAME).exists() and (store / "zarr.json").is_file()
    with pytest.raises(OutputError, match="exists already"):
        check_output(store, resume=False, overwrite=False)
