"""I/O-fault injection, in the spirit of SQLite's I/O-error tests: a real ``tomocam explain`` whose store write
fails (disk full, quota, I/O error) at one of many points stops with one line and exit code 3, no traceback; once
the fault is gone, ``--resume`` completes the store, equal array by array to an uninterrupted run's.

Faults come two ways:

- **below zarr**: the ``n``-th chunk or metadata write whose path matches a pattern fails. A write through
  zarr-python (metadata, ``tiles/done``) raises ``OSError`` before its temporary file is renamed, so nothing is
  left, as zarr-python's own failure would; a chunk zarrs wrote is then damaged as a failed in-place write leaves
  it (emptied, cut short, or overwritten with bytes that do not decode) and zarrs' error is raised as zarrs
  raises it, ``RuntimeError: No space left on device (os error 28)``.
- **a full filesystem**: the store lives on a tmpfs of a fraction of the reference store's size (the tests run as
  root here and in CI); it is remounted larger before ``--resume``. Skipped, with the reason, where mounting fails.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from explain_models import matched_filter_checkpoint, particles_volume, write_mrc
from test_resume_faults import assert_same_store

from tomocam.store import open_store

TESTS = Path(__file__).parent

# The real CLI with the test architectures importable. FAIL_AT=REGEX#N:ERRNO:DAMAGE makes the N-th write whose
# store path matches REGEX fail with ERRNO; DAMAGE (empty, short, garbage) is what a failed zarrs write leaves in
# the chunk. COUNT_WRITES_TO=FILE writes the number of chunk and metadata writes to FILE at exit.
RUNNER = r"""
import atexit, os, re, sys, threading
from pathlib import Path
sys.path.insert(0, sys.argv.pop(1))
import explain_models
import zarr.storage._local as local
import zarrs.pipeline
fail_at, count_to = os.environ.get("FAIL_AT"), os.environ.get("COUNT_WRITES_TO")
where, _, rest = (fail_at or "").rpartition("#")
nth, number, damage = rest.split(":") if fail_at else ("0", "0", "")
pattern, nth, number = re.compile(where), int(nth), int(number)
lock, seen, writes = threading.Lock(), [0], [0]

def hit(path):
    with lock:
        writes[0] += 1
        if fail_at and pattern.search(str(path)):
            seen[0] += 1
            return seen[0] == nth
    return False

put = local._put

def put_or_fail(path, value, exclusive=False):
    if hit(path):
        raise OSError(number, os.strerror(number), str(path))
    return put(path, value, exclusive=exclusive)

write = zarrs.pipeline.ZarrsCodecPipeline.write

def spoil(file):
    data = file.read_bytes()
    if damage == "empty":
        file.write_bytes(b"")
    elif damage == "short":
        file.write_bytes(data[: len(data) // 2])
    else:
        file.write_bytes(bytes(255 - b for b in data[:64]) + data[64:])

async def write_or_fail(self, batch_info, value, drop_axes=()):
    batch_info = list(batch_info)
    await write(self, batch_info, value, drop_axes)
    for byte_setter, *_ in batch_info:
        if hit(byte_setter.path):
            spoil(Path(byte_setter.store.root) / byte_setter.path)
            raise RuntimeError(f"{os.strerror(number)} (os error {number})")

local._put = put_or_fail
zarrs.pipeline.ZarrsCodecPipeline.write = write_or_fail
if count_to:
    atexit.register(lambda: open(count_to, "w").write(str(writes[0])))
from tomocam.cli.main import main
sys.argv = ["tomocam", "explain", *sys.argv[1:]]
main()
"""

#: Fault points run by default: phase 2 (a heatmap chunk cut short by an I/O error), finalize (a quota hit
#: writing the scores' metadata through zarr-python); phase 1 is the full tmpfs's default point.
POINTS = [
    "respond/0/c/#3:5:short",
    "scores/.*zarr.json#1:122:empty",
]
#: The rest of the sweep (slow): more indices, errnos and damage.
MORE_POINTS = [
    "tiles/(logits|label_bounds|respond)/c/#4:28:empty",
    "tiles/(logits|label_bounds|respond)/c/#1:28:garbage",
    "tiles/done/c/#2:5:empty",  # the resume record itself (zarr-python: atomic, nothing left)
    "tiles/(logits|label_bounds|respond)/c/#20:122:short",
    "respond/1/c/#1:28:garbage",
    "labels/segmentation/0/c/#1:28:empty",
    "labels/segmentation/1/c/#1:5:short",
    "scores/probabilities/c/#1:28:empty",
    "zarr.json#3:28:empty",  # the store's own metadata while it is created
    "tiles/(logits|label_bounds|respond)/c/#6:2:short",  # a vanished folder (ENOENT)
    "respond/0/c/#5:30:empty",  # a filesystem remounted read-only (EROFS)
]


def _start(case: dict, store: Path, *extra: str, fail_at: str | None = None, count_to: Path | None = None
           ) -> subprocess.CompletedProcess:
    args = [str(case["mrc"]), "--model", str(case["model"]), "-o", str(store), "--tile", "16", "--stride", "16",
            "--block", "3", "--batch-size", "8", "--workers", "1", "--no-progress", *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("FAIL_AT", "COUNT_WRITES_TO")}
    env |= {"FAIL_AT": fail_at} if fail_at else {}
    env |= {"COUNT_WRITES_TO": str(count_to)} if count_to else {}
    return subprocess.run([sys.executable, "-c", RUNNER, str(TESTS), *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    """A 48x132x132 tomogram (3 pyramid levels), the matched-filter model, and the uninterrupted run's store."""
    tmp = tmp_path_factory.mktemp("io-faults")
    volume, _ = particles_volume((48, 132, 132), n=60, seed=4)
    case = {"mrc": write_mrc(tmp / "t.mrc", volume), "model": matched_filter_checkpoint(tmp / "mf.pt"),
            "reference": tmp / "reference.zarr"}
    done = _start(case, case["reference"], count_to=tmp / "writes")
    assert done.returncode == 0, done.stderr
    case["writes"] = int((tmp / "writes").read_text())
    case["bytes"] = sum(f.stat().st_size for f in case["reference"].rglob("*") if f.is_file())
    return case


def assert_fails_cleanly(run: subprocess.CompletedProcess, reason: str) -> None:
    """Exit 3 and one line: what failed, and the command that continues the run (or, when the store was not yet
    created, that there is nothing to resume)."""
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 3 and "Traceback" not in run.stderr and len(lines) == 1, run.stderr[-3000:]
    assert lines[0].startswith("Error: ") and reason in lines[0], lines[0]
    assert ("continue with: tomocam explain" in lines[0] and lines[0].endswith("--resume")) or \
        lines[0].endswith("stopped before the output store was created; nothing to resume"), lines[0]


def _fail_and_resume(case: dict, store: Path, fail_at: str) -> None:
    number = int(fail_at.rsplit(":", 2)[1])
    assert_fails_cleanly(_start(case, store, fail_at=fail_at), os.strerror(number))
    resumed = _start(case, store, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    open_store(store)
    assert_same_store(store, case["reference"])


@pytest.mark.parametrize("fail_at", POINTS + [pytest.param(p, marks=pytest.mark.slow) for p in MORE_POINTS])
def test_a_failed_write_stops_the_run_in_one_line_and_resume_completes_it(case, fail_at, tmp_path):
    _fail_and_resume(case, tmp_path / "t.zarr", fail_at)


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.4, 0.6, 0.8, 0.95])
def test_a_write_failing_anywhere_in_the_run_is_resumed(case, fraction, tmp_path):
    """Any write, by its index in an uninterrupted run's sequence of writes: a sweep over the whole run."""
    nth = max(1, round(fraction * case["writes"]))
    _fail_and_resume(case, tmp_path / "t.zarr", f".#{nth}:{errno.ENOSPC}:short")


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs mounted at ``tmp_path / 'disk'``, resized by the test; unmounted after it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root): {mounted.stderr.strip()}")

    def resize(nbytes: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={nbytes}", str(disk)], check=True)

    yield disk, resize
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("fraction", [0.3, *(pytest.param(f, marks=pytest.mark.slow) for f in (0.75, 0.97))],
                         ids=["phase 1", "phase 2", "finalize"])
def test_a_full_disk_stops_the_run_and_resume_completes_it_once_space_is_back(case, small_disk, fraction):
    disk, resize = small_disk
    resize(int(fraction * case["bytes"]))
    store = disk / "t.zarr"
    assert_fails_cleanly(_start(case, store), "No space left on device")
    resize(4 * case["bytes"])
    resumed = _start(case, store, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_store(store, case["reference"])
