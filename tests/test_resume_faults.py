"""Fault injection: a real ``tomocam explain`` killed (SIGKILL to its process group) anywhere in phase 1, phase 2
or finalize, then rerun with ``--resume``, writes a store equal, array by array, to an uninterrupted run's.

Kill points are of two kinds:

- **after a store write**: the subprocess kills its own process group right after the ``n``-th file whose path
  matches a pattern is written (e.g. ``respond/2/zarr.json``: just after finalize creates pyramid level 2, before
  any of its chunks). Deterministic: the store is exactly at that point when the run dies.
- **after a fraction of the run**: the test kills the process group a fraction of an uninterrupted run's time
  after the store appears (wherever the run then is).

The comparison walks both zarr trees generically (every array's path, shape, dtype, chunks and values; every
group's attributes but the run's command and timings), so it holds for any store layout. The store is opened
only through the CLI and the public reader.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from explain_models import matched_filter_checkpoint, particles_volume, write_mrc
from tomocam.errors import InputError
from tomocam.write import open_store

TESTS = Path(__file__).parent

# The real CLI with the test architectures importable. With KILL_AT=REGEX[#N] set, the N-th (default first) file
# write whose path matches REGEX SIGKILLs the process group right after the file is in place. zarr's LocalStore
# writes every file (metadata and chunks, atomically) through zarr.storage._local._put.
RUNNER = r"""
import os, re, signal, sys
sys.path.insert(0, sys.argv.pop(1))
import explain_models
kill_at = os.environ.get("KILL_AT")
if kill_at:
    import zarr.storage._local as local
    pattern, _, nth = kill_at.partition("#")
    pattern, left, put = re.compile(pattern), [int(nth or 1)], local._put

    def put_then_die(path, value, exclusive=False):
        written = put(path, value, exclusive=exclusive)
        if pattern.search(str(path)):
            left[0] -= 1
            if left[0] == 0:
                os.killpg(0, signal.SIGKILL)
        return written

    local._put = put_then_die
from tomocam.cli.main import main
sys.argv = ["tomocam", "explain", *sys.argv[1:]]
main()
"""

#: One kill point per phase, run by default (CI).
PHASE_POINTS = [
    "tiles/done/c/.*#2",  # phase 1: two blocks done
    "respond/0/c/.*#3",  # phase 2: three chunks of level 0 written
    "respond/2/zarr.json",  # finalize: pyramid level 2 created, no chunk of it written
]
#: The rest of the sweep.
MORE_POINTS = [
    "tiles/zarr.json",  # store skeleton being created (beside its final path)
    "tiles/done/c/.*#9",  # phase 1: the last block done, nothing recorded yet
    "respond/1/c/.*",  # phase 2: level 1 started
    "labels/segmentation/0/c/.*",  # phase 2: labels started
    "respond/2/c/.*",  # finalize: one chunk of level 2 written
    "labels/segmentation/1/zarr.json",  # finalize: label pyramid
    "scores/logits/zarr.json",  # finalize: scores
    "scores/probabilities/c/.*",
]
FRACTIONS = [0.25, 0.5, 0.75]


def _env(kill_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KILL_AT"}
    return env | ({"KILL_AT": kill_at} if kill_at else {})


def _start(case: dict, store: Path, *extra: str, kill_at: str | None = None) -> subprocess.Popen:
    args = [str(case["mrc"]), "--model", str(case["model"]), "-o", str(store), "--tile", "16", "--stride", "16",
            "--block", "3", "--batch-size", "8", "--workers", "1", "--no-progress", *extra]
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(TESTS), *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(kill_at))


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err.decode()


def _exists(store: Path) -> bool:
    return store.exists() or Path(f"{store}.partial").exists()


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    """A 48x132x132 tomogram (3 pyramid levels at the default chunks), a matched-filter model slowed to 20 ms per
    batch, and the uninterrupted run's store and duration (from the store's appearance to the end)."""
    tmp = tmp_path_factory.mktemp("faults")
    model = matched_filter_checkpoint(tmp / "mf.pt", delay=0.02)
    volume, _ = particles_volume((48, 132, 132), n=60, seed=4)
    case = {"mrc": write_mrc(tmp / "t.mrc", volume), "model": model, "tmp": tmp}
    proc = _start(case, tmp / "reference.zarr")
    while not _exists(tmp / "reference.zarr") and proc.poll() is None:
        time.sleep(0.01)
    t0 = time.monotonic()
    code, err = _finish(proc)
    assert code == 0, err
    case["reference"] = tmp / "reference.zarr"
    case["seconds"] = time.monotonic() - t0
    return case


def _arrays_and_attrs(path: Path) -> tuple[dict[str, zarr.Array], dict[str, dict]]:
    """Every array of the store by path, and every group's attributes (the root's without command and timings)."""
    root = zarr.open_group(str(path), mode="r")
    arrays, attrs = {}, {"": dict(root.attrs)}
    for name, node in root.members(max_depth=None):
        (arrays if isinstance(node, zarr.Array) else attrs)[name] = node if isinstance(node, zarr.Array) else \
            dict(node.attrs)
    attrs[""]["tomocam"] = {k: v for k, v in attrs[""]["tomocam"].items() if k not in ("command", "timings")}
    return arrays, attrs


def assert_same_store(resumed: Path, reference: Path) -> None:
    """The two stores hold the same arrays (path, shape, dtype, chunks, values bit for bit) and attributes."""
    a_arrays, a_attrs = _arrays_and_attrs(resumed)
    b_arrays, b_attrs = _arrays_and_attrs(reference)
    assert sorted(a_arrays) == sorted(b_arrays)
    for name, a in a_arrays.items():
        b = b_arrays[name]
        assert (a.shape, a.dtype, a.chunks) == (b.shape, b.dtype, b.chunks), name
        np.testing.assert_array_equal(a[...], b[...], err_msg=name)
    assert a_attrs == b_attrs


def _kill_and_resume(case: dict, store: Path, proc: subprocess.Popen) -> None:
    """The killed run left a store the reader refuses; --resume completes it to the reference."""
    code, err = _finish(proc)
    assert code == -signal.SIGKILL, f"the run was not killed (exit {code}): {err}"
    with pytest.raises(InputError):
        open_store(store)
    code, err = _finish(_start(case, store, "--resume"))
    assert code == 0, err
    open_store(store)
    assert_same_store(store, case["reference"])


@pytest.mark.parametrize(
    "kill_at", PHASE_POINTS + [pytest.param(p, marks=pytest.mark.slow) for p in MORE_POINTS]
)
def test_run_killed_after_a_store_write_resumes_to_the_uninterrupted_store(case, kill_at, tmp_path):
    store = tmp_path / "killed.zarr"
    _kill_and_resume(case, store, _start(case, store, kill_at=kill_at))


@pytest.mark.slow
@pytest.mark.parametrize("fraction", FRACTIONS)
def test_run_killed_after_a_fraction_of_its_time_resumes_to_the_uninterrupted_store(case, fraction, tmp_path):
    store = tmp_path / "killed.zarr"
    proc = _start(case, store)
    while not _exists(store) and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(fraction * case["seconds"])
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    _kill_and_resume(case, store, proc)
