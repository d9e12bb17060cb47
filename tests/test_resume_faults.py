"""Fault injection: a real ``tomocam explain`` killed (SIGKILL to its process group) anywhere in phase 1, phase 2
or finalize, then rerun with ``--resume``, writes a store equal, array by array, to an uninterrupted run's.

Kill points are of two kinds:

- **after a store write**: the subprocess kills its own process group right after the ``n``-th file whose path
  matches a pattern is written (e.g. ``scores/logits/zarr.json``: just after finalize creates the scores, before
  any of their chunks). Deterministic: the store is exactly at that point when the run dies.
- **after a fraction of the run**: right after the ``n``-th file write of any kind, ``n`` being a fraction of the
  writes an uninterrupted run makes (its progress measured in writes, not seconds: on a shared, loaded machine a
  time fraction lands anywhere, or after the end).

The comparison walks both zarr trees generically (every array's path, shape, dtype, chunks and values; every
group's attributes but the run's command and timings), so it holds for any store layout. The store is opened
only through the CLI and the public reader.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from explain_models import matched_filter_checkpoint, particles_volume, write_mrc

from tomocam.errors import InputError
from tomocam.store import open_store

TESTS = Path(__file__).parent

# The real CLI with the test architectures importable. With KILL_AT=REGEX[#N] set, the N-th (default first) file
# write whose path matches REGEX SIGKILLs the process group right after the file is in place; with
# COUNT_WRITES_TO=FILE, the number of file writes is written to FILE at exit. Files reach the disk two ways: zarr's
# LocalStore writes metadata and the chunks of arrays opened with zarr-python's pipeline (atomically) through
# zarr.storage._local._put; the zarrs pipeline writes the chunks of one array assignment together, in Rust, so
# those are counted, in order, once the assignment's write returns (a kill lands after the batch holding the N-th).
RUNNER = r"""
import os, re, signal, sys, threading
sys.path.insert(0, sys.argv.pop(1))
import explain_models
import zarr.storage._local as local
import zarrs.pipeline
kill_at, count_to = os.environ.get("KILL_AT"), os.environ.get("COUNT_WRITES_TO")
pattern, _, nth = (kill_at or "").partition("#")
pattern, nth, count, lock, put = re.compile(pattern), int(nth or 1), [0, 0], threading.Lock(), local._put

def watch(path):  # writes run on several threads: count under a lock
    with lock:
        count[0] += 1
        count[1] += bool(kill_at and pattern.search(str(path)))
        if kill_at and count[1] >= nth:
            os.killpg(0, signal.SIGKILL)

def put_and_watch(path, value, exclusive=False):
    written = put(path, value, exclusive=exclusive)
    watch(path)
    return written

write = zarrs.pipeline.ZarrsCodecPipeline.write

async def write_and_watch(self, batch_info, value, drop_axes=()):
    batch_info = list(batch_info)
    await write(self, batch_info, value, drop_axes)
    for byte_setter, *_ in batch_info:
        watch(byte_setter.path)

local._put = put_and_watch
zarrs.pipeline.ZarrsCodecPipeline.write = write_and_watch
if count_to:
    import atexit
    atexit.register(lambda: open(count_to, "w").write(str(count[0])))
from tomocam.cli.main import main
sys.argv = ["tomocam", "explain", *sys.argv[1:]]
main()
"""

#: One kill point per phase, run by default (CI).
PHASE_POINTS = [
    "tiles/done/c/.*#2",  # phase 1: two blocks done
    "respond/0/c/.*#3",  # phase 2: three chunks of level 0 written
    "scores/logits/zarr.json",  # finalize: scores created, no chunk of them written
]
#: The rest of the sweep.
MORE_POINTS = [
    "tiles/zarr.json",  # store skeleton being created (beside its final path)
    "tiles/done/c/.*#9",  # phase 1: the last block done, nothing recorded yet
    "respond/1/c/.*",  # phase 2: level 1 started
    "respond/2/c/.*",  # phase 2: level 2 started (every level comes from the task's memory)
    "labels/segmentation/0/c/.*",  # phase 2: labels started
    "labels/segmentation/1/c/.*",  # phase 2: label pyramid started
    "scores/probabilities/c/.*",  # finalize: scores
]
FRACTIONS = [0.1, 0.3, 0.5, 0.7, 0.8]  # the write count varies by ~20% between runs (chunks left empty)


def _env(**hooks: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KILL_AT", "COUNT_WRITES_TO")}
    return env | {k: v for k, v in hooks.items() if v}


def _start(case: dict, store: Path, *extra: str, kill_at: str | None = None, count_to: Path | None = None
           ) -> subprocess.Popen:
    args = [str(case["mrc"]), "--model", str(case["model"]), "-o", str(store), "--tile", "16", "--stride", "16",
            "--block", "3", "--batch-size", "8", "--workers", "1", "--no-progress", *extra]
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(TESTS), *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=_env(KILL_AT=kill_at, COUNT_WRITES_TO=str(count_to) if count_to else None))


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err.decode()


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    """A 48x132x132 tomogram (3 pyramid levels at the default chunks), a matched-filter model slowed to 20 ms per
    batch, and the uninterrupted run's store and number of file writes."""
    tmp = tmp_path_factory.mktemp("faults")
    model = matched_filter_checkpoint(tmp / "mf.pt", delay=0.02)
    volume, _ = particles_volume((48, 132, 132), n=60, seed=4)
    case = {"mrc": write_mrc(tmp / "t.mrc", volume), "model": model, "reference": tmp / "reference.zarr"}
    code, err = _finish(_start(case, case["reference"], count_to=tmp / "writes"))
    assert code == 0, err
    case["writes"] = int((tmp / "writes").read_text())
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
    assert not list(store.rglob("*.partial"))  # no temporary file of a write the kill cut short


@pytest.mark.parametrize(
    "kill_at", PHASE_POINTS + [pytest.param(p, marks=pytest.mark.slow) for p in MORE_POINTS]
)
def test_run_killed_after_a_store_write_resumes_to_the_uninterrupted_store(case, kill_at, tmp_path):
    store = tmp_path / "killed.zarr"
    _kill_and_resume(case, store, _start(case, store, kill_at=kill_at))


@pytest.mark.slow
@pytest.mark.parametrize("fraction", FRACTIONS)
def test_run_killed_after_a_fraction_of_its_writes_resumes_to_the_uninterrupted_store(case, fraction, tmp_path):
    store = tmp_path / "killed.zarr"
    _kill_and_resume(case, store, _start(case, store, kill_at=f".#{max(1, round(fraction * case['writes']))}"))
