"""The ``tomocam`` entry point as scripts and SLURM see it: exit codes, one-line errors, Ctrl-C, fast help.

Every test runs the real console entry point in a fresh Python process, so an upgrade of Typer or click that
changes how errors or interrupts reach :func:`tomocam.cli.main.main` fails here.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from explain_models import matched_filter_checkpoint, particles_volume, write_mrc

TESTS = Path(__file__).parent
ROOT = TESTS.parent
# Like ``python -m tomocam``, after importing the test models (the matched-filter architecture) in the client.
ENTRY = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import explain_models; "
         "from tomocam.cli.main import main; sys.argv = ['tomocam', *sys.argv[1:]]; main()")


def env() -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout and the test models importable, also in Dask worker
    processes (which import ``explain_models`` as a preload, registering the matched-filter architecture)."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
        "DASK_DISTRIBUTED__WORKER__PRELOAD": json.dumps(["explain_models"]),
        "COLUMNS": "200",
    }


def tomocam(*args: str, test_models: bool = True) -> subprocess.CompletedProcess:
    """Run ``tomocam ARGS``; ``test_models=False`` runs ``python -m tomocam`` exactly as a user would."""
    entry = ["-c", ENTRY, str(TESTS)] if test_models else ["-m", "tomocam"]
    return subprocess.run([sys.executable, *entry, *args], capture_output=True, text=True, env=env(), timeout=300)


def one_red_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "--bogus"], "No such option: --bogus"),
        (["explain"], "Missing argument"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["explain", "t.mrc", "-m", "foo"], "'foo' is not one of 'respond', 'gradcam'"),
        (["picks", "t.zarr"], "Missing option '--radius'"),
        (["simulate", "tomogram"], "Missing argument"),
    ],
    ids=["unknown option", "missing argument", "unknown command", "bad method", "missing option", "subcommand"],
)
def test_usage_errors_are_one_line_and_exit_2(args, message):
    result = tomocam(*args, test_models=False)
    assert result.returncode == 2
    line = one_red_line(result.stderr)
    assert line.startswith("Error: ") and message in line and "--help" in line


def test_input_and_output_errors_exit_2_and_3(tmp_path):
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"not an MRC file" * 100)
    result = tomocam("explain", str(junk), "-o", str(tmp_path / "j.zarr"), test_models=False)
    assert result.returncode == 2 and "cannot be read as an MRC" in one_red_line(result.stderr)
    (tmp_path / "exists.zarr").mkdir()
    mrc = write_mrc(tmp_path / "t.mrc", particles_volume((32, 32, 32), n=2)[0])
    model = matched_filter_checkpoint(tmp_path / "mf.pt")
    result = tomocam("explain", str(mrc), "--model", str(model), "-o", str(tmp_path / "exists.zarr"))
    assert result.returncode == 3 and "exists already" in one_red_line(result.stderr)


def test_a_nan_tomogram_is_one_line_without_bars_of_phases_that_never_ran(tmp_path):
    """Progress bars on (the default): the NaN block stops phase 1 before it computed a tile, so no bar is drawn,
    neither for phase 1 nor for phase 2, and stderr holds the error alone."""
    volume = particles_volume((32, 32, 32), n=2)[0]
    volume[0, 0, 0] = np.nan
    mrc = write_mrc(tmp_path / "nan.mrc", volume)
    model = matched_filter_checkpoint(tmp_path / "mf.pt")
    result = tomocam("explain", str(mrc), "--model", str(model), "-o", str(tmp_path / "nan.zarr"), "--workers", "1")
    assert result.returncode == 2
    line = one_red_line(result.stderr)
    assert "NaN or Inf voxels" in line and "phase" not in result.stderr


def _done_blocks(store: Path) -> int:
    try:
        return int(np.asarray(zarr.open_array(str(store / "tiles" / "done"), mode="r")[...]).sum())
    except Exception:  # not created yet, or being written
        return 0


def test_a_second_run_on_a_store_being_written_is_refused_in_one_line_naming_the_first(tmp_path):
    """The same command started twice, or with --overwrite beside it: each refused at once (exit 3),
    naming the run that writes the store, which goes on undisturbed and releases its lock at the end."""
    model = matched_filter_checkpoint(tmp_path / "slow.pt", delay=1.5)  # 20 batches: 30 s
    mrc = write_mrc(tmp_path / "t.mrc", particles_volume((40, 40, 48), n=8, seed=2)[0])
    store = tmp_path / "t.zarr"
    args = ["explain", str(mrc), "--model", str(model), "-o", str(store), "--block", "2", "--batch-size", "4",
            "--workers", "1", "--no-progress"]
    first = subprocess.Popen([sys.executable, "-c", ENTRY, str(TESTS), *args], env=env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while _done_blocks(store) < 1 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None, f"the first run ended too soon: {first.communicate()}"
        for flags in ([], ["--overwrite"]):
            start = time.monotonic()
            second = tomocam(*args, *flags)
            line = one_red_line(second.stderr)
            assert second.returncode == 3 and time.monotonic() - start < 60, second.stderr
            assert "is being written by another run" in line and f"pid {first.pid} on host" in line, line
            assert first.poll() is None, "the first run was disturbed"
        _, err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert zarr.open_group(str(store), mode="r").attrs["tomocam"]["complete"] is True
    assert not (store / ".tomocam.lock").exists()


@pytest.mark.slow
def test_ctrl_c_exits_130_quietly_and_the_printed_resume_command_completes_the_store(tmp_path):
    from distributed import Client, LocalCluster

    from tomocam.pipeline import ExplainConfig, explain_tomogram
    from tomocam.store import open_store

    # 0.5 s per batch of 4 tiles, 1 s per block: a run of 12 blocks on 2 workers lasts long enough to be stopped
    # midway even when the polling below is slowed by a loaded machine
    model = matched_filter_checkpoint(tmp_path / "slow.pt", delay=0.5)
    mrc = write_mrc(tmp_path / "t.mrc", particles_volume((40, 40, 48), n=8, seed=2)[0])
    store = tmp_path / "t.zarr"
    args = ["explain", str(mrc), "--model", str(model), "--block", "2", "--batch-size", "4", "--workers", "2",
            "--no-progress"]
    # SIGINT at its default, as in a terminal: pytest started in the background by a non-interactive shell (`... &`)
    # inherits an ignored SIGINT, which the run would inherit too and then never see the interrupt
    proc = subprocess.Popen([sys.executable, "-c", ENTRY, str(TESTS), *args], env=env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    total = 2 * 2 * 3  # 4 x 4 x 5 tiles in blocks of 2
    deadline = time.monotonic() + 600
    while _done_blocks(store) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every process of the group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    line = one_red_line(err)  # no worker tracebacks
    assert line.startswith("Interrupted: ") and "continue with: " in line
    done_at_interrupt = _done_blocks(store)
    assert 0 < done_at_interrupt < total
    with pytest.raises(Exception, match="incomplete"):
        open_store(store)

    command = shlex.split(line.split("continue with: ", 1)[1])
    assert command[0] == "tomocam" and command[-1] == "--resume"
    resumed = tomocam(*command[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert f"{total - done_at_interrupt} blocks computed, {done_at_interrupt} resumed" in resumed.stdout
    fresh = tmp_path / "fresh.zarr"  # uninterrupted, in this process (a subprocess with workers costs a minute)
    config = ExplainConfig(tomogram=str(mrc), output=str(fresh), model=str(model), block=2, batch_size=4)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        explain_tomogram(config, client=client)
    a, b = open_store(store), open_store(fresh)
    # other torch thread counts than the CLI's workers: equal up to float rounding (docs/explain.md: ~1e-7 relative)
    np.testing.assert_allclose(a.heatmap()[...], b.heatmap()[...], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(a.logits[...], b.logits[...], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(a.labels()[...], b.labels()[...])


HEAVY = ("torch", "dask", "distributed", "zarr", "scipy", "matplotlib", "pandas", "mrcfile", "skimage")
COMMANDS = ["", "info", "explain", "demo", "simulate", "simulate subtomograms", "simulate tomogram", "train",
            "evaluate", "render", "export", "picks"]


def test_help_imports_nothing_heavy():
    """``tomocam --help`` and every ``COMMAND --help`` print without importing torch, Dask, zarr, SciPy or
    matplotlib (the seconds a user waits for help are the imports); one process checks them all."""
    code = (
        "import json, sys\n"
        "from tomocam.cli.main import main\n"
        f"heavy = {HEAVY!r}\n"
        "found = {}\n"
        f"for command in {COMMANDS!r}:\n"
        "    sys.argv = ['tomocam', *command.split(), '--help']\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as stop:\n"
        "        assert not stop.code, (command, stop.code)\n"
        "    found[command] = [m for m in heavy if m in sys.modules]\n"
        "print(json.dumps(found))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found == {command: [] for command in COMMANDS}
