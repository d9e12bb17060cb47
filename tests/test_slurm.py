"""The SLURM batch scripts of scripts/slurm/, run on a real SLURM (CI starts a one-node, CPU-only one with
.ci/slurm/start.sh) on small synthetic tomograms with a tiny model. Each job's store must equal, array for
array, the store of a local `tomocam explain` run; a job cancelled mid-run and submitted again, and a job that
requeues itself at the walltime signal, must resume (skip the blocks already done) and give the same store.

The tests marked ``slurm`` are skipped when no SLURM controller answers. The shellcheck test and the argument
checks need no SLURM."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts" / "slurm"
SHELL_FILES = [*sorted(SCRIPTS.glob("*.sbatch")), *sorted(SCRIPTS.glob("*.sh")),
               *sorted((REPO / ".ci/slurm").glob("*.sh"))]
BLOCK = "2"  # tiles per block edge: many small phase-1 blocks, so that a run can be stopped between them
JOB_TIMEOUT = 180.0


def slurm_problem() -> str | None:
    """Why the SLURM tests cannot run here, or None when a controller answers with a usable node."""
    if shutil.which("sinfo") is None:
        return "no SLURM here: `sinfo` not found (CI starts one with .ci/slurm/start.sh)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "no SLURM controller answers: `sinfo` timed out"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*") in ("idle", "mixed", "allocated") for s in states):
        return f"no usable SLURM node: `sinfo` said {(out.stdout + out.stderr).strip()!r}"
    return None


needs_slurm = pytest.mark.skipif(slurm_problem() is not None, reason=str(slurm_problem()))


# --- no SLURM needed -------------------------------------------------------------------------------------------


def test_scripts_pass_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (CI installs it with .ci/slurm/install.sh)")
    out = subprocess.run(["shellcheck", "-x", *map(str, SHELL_FILES)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(SHELL_FILES) >= 8


@pytest.mark.parametrize("script", ["explain.sbatch", "explain-multinode.sbatch", "explain-array.sbatch"])
def test_missing_arguments_print_usage_and_submit_nothing(script, tmp_path):
    out = subprocess.run([str(SCRIPTS / script), "only-one-argument"], capture_output=True, text=True,
                         env=login_env(tmp_path))
    assert out.returncode == 2
    assert "expected" in out.stderr and "Usage:" in out.stderr and "TOMOCAM_" in out.stderr
    assert "#SBATCH" not in out.stderr


def login_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A login node's environment: tomocam on PATH, behind a fake `sbatch` that prints its arguments."""
    fake = tmp_path / "bin" / "sbatch"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "ARG $a"; done\necho "Submitted batch job 1"\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOMOCAM_", "SLURM_"))}
    return env | {"PATH": f"{fake.parent}:{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"} | settings


def test_array_of_an_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "t_mask.mrc").write_text("")  # excluded by default
    out = subprocess.run([str(SCRIPTS / "explain-array.sbatch"), str(tmp_path / "empty"), str(tmp_path / "out")],
                         capture_output=True, text=True, env=login_env(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[0].startswith("tomocam: no tomograms in")


@pytest.mark.parametrize(
    ("given", "settings", "expected", "array"),
    [
        ("{d}", {}, ["a.mrc", "b.rec", "sub_c.mrc"], "--array=0-2"),  # a folder: *_mask.mrc left out
        ("{d}/*_c.mrc", {}, ["sub_c.mrc"], "--array=0-0"),  # a glob pattern
        ("{d}", {"TOMOCAM_ARRAY_EXCLUDE": "'*_mask.mrc' 'sub_*'", "TOMOCAM_ARRAY_LIMIT": "1"}, ["a.mrc", "b.rec"],
         "--array=0-1%1"),
        ("{d}", {"TOMOCAM_ARRAY_EXCLUDE": ""}, ["a.mrc", "a_mask.mrc", "b.rec", "sub_c.mrc"], "--array=0-3"),
    ],
    ids=["folder", "glob", "excludes-and-limit", "no-excludes"],
)
def test_array_input_by_folder_or_glob_with_excludes_and_a_limit(tmp_path, given, settings, expected, array):
    folder = tmp_path / "tomograms"
    folder.mkdir()
    for name in ("a.mrc", "a_mask.mrc", "b.rec", "sub_c.mrc", "notes.txt"):
        (folder / name).write_text("")
    out = subprocess.run([str(SCRIPTS / "explain-array.sbatch"), given.format(d=folder), str(tmp_path / "out")],
                         capture_output=True, text=True, env=login_env(tmp_path, **settings))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "tomograms.txt").read_text().split() == [str(folder / n) for n in expected]
    assert f"ARG {array}" in out.stdout.splitlines()


@pytest.mark.parametrize(("per_task", "array"), [("2", "--array=0-1"), ("3", "--array=0-0"), ("1", "--array=0-2")])
def test_array_per_task_submits_one_task_per_n_tomograms_of_the_frozen_list(tmp_path, per_task, array):
    folder = tmp_path / "tomograms"
    folder.mkdir()
    for name in ("a.mrc", "b.mrc", "c.mrc"):
        (folder / name).write_text("")
    listing = tmp_path / "list.txt"
    listing.write_text("# relative to the submitting folder\ntomograms/a.mrc\n\ntomograms/b.mrc\ntomograms/c.mrc\n")
    out = subprocess.run([str(SCRIPTS / "explain-array.sbatch"), "list.txt", str(tmp_path / "out"), "--model",
                          "m.pt", "--per-task", per_task, "--block", "2"], capture_output=True, text=True,
                         env=login_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "tomograms.txt").read_text().split() == [str(folder / f"{n}.mrc") for n in "abc"]
    args = [line.removeprefix("ARG ") for line in out.stdout.splitlines() if line.startswith("ARG ")]
    assert array in args
    script = args.index(str(SCRIPTS / "explain-array.sbatch"))
    assert args[script + 1:] == [str(tmp_path / "out" / "tomograms.txt"), str(tmp_path / "out"), "--per-task",
                                 per_task, "--model", "m.pt", "--block", "2"]


def test_array_per_task_must_be_a_positive_number(tmp_path):
    out = subprocess.run([str(SCRIPTS / "explain-array.sbatch"), str(tmp_path), str(tmp_path / "out"), "--per-task",
                          "0"], capture_output=True, text=True, env=login_env(tmp_path))
    assert out.returncode == 2 and "--per-task needs a positive number, found: '0'" in out.stderr


def test_array_template_has_the_settings_resources_and_no_array_range(tmp_path):
    env = login_env(tmp_path, TOMOCAM_GPUS_PER_NODE="0", TOMOCAM_TIME="15", TOMOCAM_ARRAY_LIMIT="2")
    out = subprocess.run([str(SCRIPTS / "explain-array.sbatch"), "--template"], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    header = [line for line in out.stdout.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --output=tomocam-array-%A_%a.out" in header and "#SBATCH --time=15" in header
    assert not any("--array" in line for line in header)  # the range depends on the list: given at sbatch
    assert "sbatch --array=0-9%4 THIS_FILE tomograms.txt OUTDIR" in " ".join(w for w in out.stdout.split() if w != "#")
    assert not any(line.startswith("ARG") for line in out.stdout.splitlines()), "the template submitted a job"


# --- on SLURM --------------------------------------------------------------------------------------------------


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure, fail the test with its output."""
    out = subprocess.run(list(args), capture_output=True, text=True, **kwargs)
    if out.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two synthetic tomograms, a tiny untrained CNN-1 checkpoint, and local reference stores of both."""
    import torch

    import tomocam
    from tomocam.simulate import builtin_structures, simulate_tomogram, write_tomogram

    root = tmp_path_factory.mktemp("slurm")
    torch.manual_seed(0)
    model = tomocam.models.cnn1(num_classes=3, input_size=16, fc_width=16)
    checkpoint = tomocam.save_checkpoint(model, root / "tiny.pt", classes=["a", "b", "c"], input_size=16,
                                         voxel_size=10.0)
    structures = builtin_structures(voxel_size=10.0)[:3]
    (root / "tomograms").mkdir()
    tomograms = []
    for i, shape in enumerate([(40, 64, 64), (32, 48, 40)]):
        path = root / "tomograms" / f"tomo{i}.mrc"
        write_tomogram(simulate_tomogram(shape, structures, 3 - i, seed=i), path)
        path.with_name(f"tomo{i}_mask.mrc").unlink()  # the folder given to the array job holds tomograms only
        tomograms.append(path)
    references = []
    for path in tomograms:
        ref = root / f"reference-{path.stem}.zarr"
        run(str(Path(sys.executable).parent / "tomocam"), "explain", str(path), "--model", str(checkpoint), "-o",
            str(ref), "--device", "cpu", "--workers", "1", "--block", BLOCK, "--no-progress")
        references.append(ref)
    return {"root": root, "checkpoint": checkpoint, "tomograms": tomograms, "references": references}


@pytest.fixture
def job_env(tmp_path):
    """The submitting environment: the test's venv first on PATH, CPU-only small jobs, a private shared dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOMOCAM_", "SLURM_", "SBATCH_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        TOMOCAM_GPUS_PER_NODE="0",
        TOMOCAM_CPUS_PER_WORKER="1",
        TOMOCAM_MEM_PER_WORKER="600MB",
        TOMOCAM_TIME="15",
        TOMOCAM_SHARED_DIR=str(tmp_path / "shared"),
        OMP_NUM_THREADS="1",
    )
    return env


def submit(script: str, *args: str, env: dict, cwd: Path, extra: str = "") -> int:
    """Submit a script the way users do (it submits itself) and return the job id."""
    if extra:
        env = {**env, "TOMOCAM_SBATCH_EXTRA": extra}
    out = run(str(SCRIPTS / script), *args, env=env, cwd=cwd)
    match = re.search(r"Submitted batch job (\d+)", out.stdout)
    assert match, out.stdout + out.stderr
    return int(match.group(1))


def job_states(job: int) -> list[str]:
    """States of a job (one per array task) as the controller records them."""
    out = run("scontrol", "show", "job", "-o", str(job)).stdout
    return re.findall(r"JobState=(\S+)", out)


def wait_for(job: int, timeout: float = JOB_TIMEOUT) -> list[str]:
    """Wait until every task of ``job`` has ended, releasing requeued tasks (SLURM holds a requeued job ~2 min
    before it may start again) at once; returns the final states."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = run("squeue", "-h", "-j", str(job), "-o", "%i %T %r").stdout.split("\n")
        active = [line.split() for line in out if line.strip()]
        if not active:
            return job_states(job)
        for task, state, reason in active:
            if state == "PENDING" and reason == "BeginTime":
                subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], capture_output=True)
        time.sleep(0.5)
    subprocess.run(["scancel", str(job)], capture_output=True)
    pytest.fail(f"SLURM job {job} did not finish within {timeout:.0f} s")


def job_log(cwd: Path, pattern: str) -> str:
    logs = sorted(cwd.glob(pattern))
    assert logs, f"no job log {pattern} in {cwd}"
    return "\n".join(path.read_text() for path in logs)


def arrays(group: zarr.Group, prefix: str = "") -> dict[str, np.ndarray]:
    out = {prefix + name: np.asarray(a[...]) for name, a in group.arrays()}
    for name, sub in group.groups():
        out.update(arrays(sub, f"{prefix}{name}/"))
    return out


def assert_same_store(store: Path, reference: Path) -> None:
    """Every array of ``store`` (heatmap levels, scores, labels, per-tile results) equals the reference's: integer
    arrays exactly, float arrays up to float32 rounding (1e-5 relative, 1e-6 of the array's largest magnitude):
    torch's CPU kernels may round differently with other thread counts (differences of ~1e-12 were seen)."""
    got, want = zarr.open_group(store, mode="r"), zarr.open_group(reference, mode="r")
    assert got.attrs["tomocam"]["complete"] is True
    got_arrays, want_arrays = arrays(got), arrays(want)
    assert sorted(got_arrays) == sorted(want_arrays)
    assert any(name.startswith("respond/") for name in got_arrays)
    differ = {}
    for name, value in want_arrays.items():
        other = got_arrays[name]
        if np.issubdtype(value.dtype, np.floating):
            atol = 1e-6 * float(np.abs(value).max(initial=0.0))
            same = other.shape == value.shape and np.allclose(other, value, rtol=1e-5, atol=atol)
        else:
            same = np.array_equal(other, value)
        if not same:
            diff = np.abs(other.astype(np.float64) - value) if other.shape == value.shape else np.array([np.inf])
            differ[name] = f"{int((diff > 0).sum())} of {value.size} values differ, max |diff| {float(diff.max()):.3g}"
    assert not differ, f"{store} differs from {reference}: {differ}"


def blocks_done(store: Path) -> int:
    try:
        return int(np.asarray(zarr.open_group(store, mode="r")["tiles/done"][...]).sum())
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return 0


def resume_counts(log: str) -> tuple[int, int]:
    """(blocks computed, blocks resumed) of the last explain summary in a job log."""
    found = re.findall(r"(\d+) blocks computed, (\d+) resumed", log)
    assert found, log[-3000:]
    computed, resumed = found[-1]
    return int(computed), int(resumed)


def stop_mid_run(job: int, store: Path, stop: list[str], timeout: float = JOB_TIMEOUT) -> int:
    """Once some but not all blocks of ``store`` are done, run ``stop`` + job id; returns the blocks done then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = blocks_done(store)
        if done > 0:
            run(*stop, str(job))
            return done
        if "COMPLETED" in job_states(job):
            pytest.fail(f"job {job} finished before it could be stopped mid-run")
        time.sleep(0.1)
    pytest.fail(f"job {job} computed no block within {timeout:.0f} s")


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_explain_job_equals_local_run(data, job_env, tmp_path):
    out = tmp_path / "tomo0.zarr"
    job = submit("explain.sbatch", str(data["tomograms"][0]), str(out), "--model", str(data["checkpoint"]),
                 "--block", BLOCK, env={**job_env, "TOMOCAM_PROGRESS_SECONDS": "0.5"}, cwd=tmp_path)
    assert wait_for(job) == ["COMPLETED"]
    log = job_log(tmp_path, f"tomocam-explain-{job}.out")
    assert "all 1 worker(s) joined" in log
    assert re.search(r"^phase 1: CAMs of tiles: \d+/\d+ \(\d+%\)", log, re.M), log[-3000:]  # no terminal: lines
    assert_clean_log(log)
    assert_same_store(out, data["references"][0])
    assert not any((tmp_path / "shared").iterdir()), "the job's scheduler file was not removed"


def assert_clean_log(log: str) -> None:
    """A successful job's log: no Dask INFO chatter, and its job steps ended without srun errors."""
    assert " - INFO - " not in log, log[-3000:]
    assert "srun: error" not in log and "CANCELLED" not in log, log[-3000:]


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_template_with_edited_headers_runs_with_plain_sbatch(data, job_env, tmp_path):
    """`explain.sbatch --template` writes the settings' resources as #SBATCH lines; an edited copy submitted with
    plain sbatch asks for what the edit says and writes the same store."""
    template = run(str(SCRIPTS / "explain.sbatch"), "--template", env=job_env, cwd=tmp_path).stdout
    assert "#SBATCH --time=15\n" in template and "#SBATCH --mem=573M\n" in template  # TOMOCAM_MEM_PER_WORKER=600MB
    header, body = template.split("# Written by", 1)
    script = tmp_path / "my-explain.sbatch"
    script.write_text(header + "#SBATCH --time=14\n# Written by" + body)
    out = tmp_path / "tomo0.zarr"
    env = {k: v for k, v in job_env.items() if not k.startswith("TOMOCAM_")}  # the job reads the settings itself
    env |= {"TOMOCAM_SHARED_DIR": job_env["TOMOCAM_SHARED_DIR"], "TOMOCAM_MEM_PER_WORKER": "600MB"}
    submitted = run("sbatch", str(script), str(data["tomograms"][0]), str(out), "--model", str(data["checkpoint"]),
                    "--block", BLOCK, "--no-progress", env=env, cwd=tmp_path)
    job = int(re.search(r"Submitted batch job (\d+)", submitted.stdout).group(1))
    assert wait_for(job) == ["COMPLETED"]
    assert "TimeLimit=00:14:00" in run("scontrol", "show", "job", "-o", str(job)).stdout
    assert_clean_log(job_log(tmp_path, f"tomocam-explain-{job}.out"))
    assert_same_store(out, data["references"][0])


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(200)
def test_worker_failing_at_start_ends_the_job_at_once_with_its_reason(data, job_env, tmp_path):
    """Workers told to use GPUs on a node without any: the job fails within seconds, saying why (not a 600 s
    wait for workers that will never join)."""
    out = tmp_path / "tomo0.zarr"
    env = {**job_env, "TOMOCAM_GPUS_PER_NODE": "1"}
    submitted = run("sbatch", "--ntasks=1", "--cpus-per-task=1", "--time=5", str(SCRIPTS / "explain.sbatch"),
                    str(data["tomograms"][0]), str(out), "--model", str(data["checkpoint"]), env=env, cwd=tmp_path)
    job = int(re.search(r"Submitted batch job (\d+)", submitted.stdout).group(1))
    start = time.monotonic()
    assert wait_for(job, timeout=120) == ["FAILED"]
    assert time.monotonic() - start < 90
    log = job_log(tmp_path, f"tomocam-explain-{job}.out")
    assert "tomocam: a Dask worker failed at start: task 0 on" in log and "sees no GPU" in log, log[-3000:]
    assert not any((tmp_path / "shared").iterdir()), "the job's scheduler file or notes were not removed"


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_array_job_explains_each_tomogram_of_a_folder(data, job_env, tmp_path):
    outdir = tmp_path / "heatmaps"
    job = submit("explain-array.sbatch", str(data["tomograms"][0].parent), str(outdir), "--model",
                 str(data["checkpoint"]), "--block", BLOCK, "--no-progress", env=job_env, cwd=tmp_path)
    assert wait_for(job) == ["COMPLETED", "COMPLETED"]
    assert (outdir / "tomograms.txt").read_text().split() == [str(p) for p in data["tomograms"]]
    for tomogram, reference in zip(data["tomograms"], data["references"]):
        assert_same_store(outdir / f"{tomogram.stem}.zarr", reference)


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_array_job_with_several_tomograms_per_task_writes_the_same_stores_and_one_index(data, job_env, tmp_path):
    outdir = tmp_path / "heatmaps"
    job = submit("explain-array.sbatch", str(data["tomograms"][0].parent), str(outdir), "--per-task", "2",
                 "--model", str(data["checkpoint"]), "--block", BLOCK, "--no-progress", env=job_env, cwd=tmp_path)
    assert wait_for(job) == ["COMPLETED"]  # one task for both tomograms
    log = job_log(tmp_path, f"tomocam-array-{job}_*.out")
    assert "[2/2] tomo1: complete" in log and log.count("all 1 worker(s) joined") == 1, log[-3000:]
    for tomogram, reference in zip(data["tomograms"], data["references"]):
        assert_same_store(outdir / f"{tomogram.stem}.zarr", reference)
    index = (outdir / "tomocam-dataset.csv").read_text().splitlines()
    assert [line.split(",")[:3] for line in index[1:]] == [[p.stem, str(p), "complete"] for p in data["tomograms"]]


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_array_template_submitted_with_plain_sbatch_explains_each_listed_tomogram(data, job_env, tmp_path):
    template = run(str(SCRIPTS / "explain-array.sbatch"), "--template", env=job_env, cwd=tmp_path).stdout
    script = tmp_path / "my-array.sbatch"
    script.write_text(template)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{path}\n" for path in data["tomograms"]))
    env = {k: v for k, v in job_env.items() if not k.startswith("TOMOCAM_")}
    env |= {"TOMOCAM_SHARED_DIR": job_env["TOMOCAM_SHARED_DIR"], "TOMOCAM_MEM_PER_WORKER": "600MB"}
    submitted = run("sbatch", "--array=0-1", str(script), str(listing), str(tmp_path / "out"), "--model",
                    str(data["checkpoint"]), "--block", BLOCK, "--no-progress", env=env, cwd=tmp_path)
    job = int(re.search(r"Submitted batch job (\d+)", submitted.stdout).group(1))
    assert wait_for(job) == ["COMPLETED", "COMPLETED"]
    for tomogram, reference in zip(data["tomograms"], data["references"]):
        assert_same_store(tmp_path / "out" / f"{tomogram.stem}.zarr", reference)


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_multinode_job_runs_scheduler_workers_and_client_as_separate_tasks(data, job_env, tmp_path):
    """Submitted with plain sbatch (no self-submission): the job finds its helpers and settings by itself."""
    out = tmp_path / "tomo0.zarr"
    submitted = run("sbatch", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", "--time=15",
                    str(SCRIPTS / "explain-multinode.sbatch"), str(data["tomograms"][0]), str(out), "--model",
                    str(data["checkpoint"]), "--block", BLOCK, "--no-progress", env=job_env, cwd=tmp_path)
    job = int(re.search(r"Submitted batch job (\d+)", submitted.stdout).group(1))
    assert wait_for(job) == ["COMPLETED"]
    log = job_log(tmp_path, f"tomocam-multinode-{job}.out")
    assert "all 2 worker(s) joined" in log
    assert f"[tomocam] workers: tomocam-{job}-0, tomocam-{job}-1" in log  # one per srun task
    assert_clean_log(log)
    assert_same_store(out, data["references"][0])
    assert not any((tmp_path / "shared").iterdir())


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(500)
def test_cancelled_job_resubmitted_resumes_to_the_same_store(data, job_env, tmp_path):
    out = tmp_path / "tomo0.zarr"
    args = (str(data["tomograms"][0]), str(out), "--model", str(data["checkpoint"]), "--block", BLOCK, "--no-progress")
    first = submit("explain.sbatch", *args, env=job_env, cwd=tmp_path)
    done_at_cancel = stop_mid_run(first, out, ["scancel"])
    assert wait_for(first) == ["CANCELLED"]
    assert not (tmp_path / "shared" / f"scheduler-{first}.json").exists(), "no cleanup after scancel"
    assert zarr.open_group(out, mode="r").attrs["tomocam"].get("complete") is not True
    second = submit("explain.sbatch", *args, env=job_env, cwd=tmp_path)
    assert wait_for(second) == ["COMPLETED"]
    computed, resumed = resume_counts(job_log(tmp_path, f"tomocam-explain-{second}.out"))
    assert resumed >= done_at_cancel >= 1
    assert computed >= 1, "the first job finished every block before the cancellation took effect"
    assert_same_store(out, data["references"][0])


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(500)
def test_walltime_signal_requeues_the_job_which_resumes(data, job_env, tmp_path):
    """SIGUSR1 is what `#SBATCH --signal=B:USR1@120` sends before the walltime: the job requeues itself."""
    out = tmp_path / "tomo0.zarr"
    job = submit("explain.sbatch", str(data["tomograms"][0]), str(out), "--model", str(data["checkpoint"]),
                 "--block", BLOCK, "--no-progress", env=job_env, cwd=tmp_path)
    done_at_signal = stop_mid_run(job, out, ["scancel", "--batch", "--signal=USR1"])
    assert wait_for(job) == ["COMPLETED"]
    record = run("scontrol", "show", "job", "-o", str(job)).stdout
    assert "Restarts=1" in record
    log = job_log(tmp_path, f"tomocam-explain-{job}.out")
    assert "requeueing job" in log and "(restart 1," in log
    computed, resumed = resume_counts(log)
    assert resumed >= done_at_signal >= 1
    assert_same_store(out, data["references"][0])


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_cluster_slurm_from_a_login_node_submits_worker_jobs(data, job_env, tmp_path):
    """`tomocam explain --cluster slurm`: dask-jobqueue worker jobs built from the settings (slurm_cluster)."""
    out = tmp_path / "tomo0.zarr"
    before = set(run("squeue", "-h", "-o", "%i").stdout.split())
    result = run(str(Path(sys.executable).parent / "tomocam"), "explain", str(data["tomograms"][0]), "--model",
                 str(data["checkpoint"]), "-o", str(out), "--device", "cpu", "--workers", "1", "--block", BLOCK,
                 "--cluster", "slurm", "--no-progress", env=job_env, cwd=tmp_path, timeout=JOB_TIMEOUT)
    assert "32 blocks computed" in result.stdout
    assert_same_store(out, data["references"][0])
    deadline = time.monotonic() + 60  # the worker job ends when the client closes the cluster
    while set(run("squeue", "-h", "-o", "%i").stdout.split()) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not set(run("squeue", "-h", "-o", "%i").stdout.split()) - before, "worker jobs left behind"


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(200)
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"TOMOCAM_MEM_PER_WORKER": "3000M"}, "SLURM refuses the worker job"),  # the node has 2000 MB
        ({"TOMOCAM_ACTIVATE": "echo activation failed >&2; exit 3"}, "ended before a Dask worker joined"),
    ],
    ids=["rejected", "dies-at-start"],
)
def test_cluster_slurm_fails_in_bounded_time_with_one_line(data, job_env, tmp_path, settings, message):
    before = set(run("squeue", "-h", "-o", "%i").stdout.split())
    start = time.monotonic()
    out = subprocess.run(
        [str(Path(sys.executable).parent / "tomocam"), "explain", str(data["tomograms"][0]), "--model",
         str(data["checkpoint"]), "-o", str(tmp_path / "o.zarr"), "--device", "cpu", "--cluster", "slurm",
         "--no-progress"], env={**job_env, **settings}, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip().count("\n") == 0 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and time.monotonic() - start < 120
    assert not set(run("squeue", "-h", "-o", "%i").stdout.split()) - before, "worker jobs left behind"


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_cluster_slurm_stops_when_its_worker_jobs_are_lost_and_resumes(data, job_env, tmp_path):
    """The worker job is cancelled after it joined and computed a block: the client stops in bounded time with one
    line naming the jobs and the --resume command (not a wait forever), and the resumed store is the reference's."""
    from tomocam.deploy.cluster import WORKER_JOBS_POLL_SECONDS

    out = tmp_path / "tomo0.zarr"
    before = set(run("squeue", "-h", "-o", "%i").stdout.split())
    args = [str(data["tomograms"][0]), "--model", str(data["checkpoint"]), "-o", str(out), "--device", "cpu",
            "--workers", "1", "--block", BLOCK, "--no-progress"]
    tomocam_cli = str(Path(sys.executable).parent / "tomocam")
    client = subprocess.Popen([tomocam_cli, "explain", *args, "--cluster", "slurm"], env=job_env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while blocks_done(out) == 0 and client.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = set(run("squeue", "-h", "-o", "%i").stdout.split()) - before
        assert workers and client.poll() is None, "the run ended before its worker job could be cancelled"
        run("scancel", *workers)
        cancelled = time.monotonic()
        _, stderr = client.communicate(timeout=4 * WORKER_JOBS_POLL_SECONDS + 60)
    finally:
        client.kill()
    assert time.monotonic() - cancelled < 3 * WORKER_JOBS_POLL_SECONDS + 20
    assert client.returncode == 4, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "every SLURM worker job" in lines[0] and "continue with: tomocam explain" in lines[0]
    assert "--resume" in lines[0]
    assert zarr.open_group(out, mode="r").attrs["tomocam"].get("complete") is not True
    resumed = run(tomocam_cli, "explain", *args, "--resume", env=job_env, cwd=tmp_path)
    assert "blocks computed" in resumed.stdout and " 0 resumed" not in resumed.stdout
    assert_same_store(out, data["references"][0])


@needs_slurm
@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_train_job_writes_a_loadable_checkpoint(job_env, tmp_path):
    import tomocam
    from tomocam.simulate import shape_names

    classes = shape_names()[:2]
    tomocam_cli = str(Path(sys.executable).parent / "tomocam")
    run(tomocam_cli, "simulate", "subtomograms", str(tmp_path / "boxes.zarr"), "-n", "8", "--box", "16",
        "--shapes", ",".join(classes), "-j", "1", cwd=tmp_path)
    job = submit("train.sbatch", str(tmp_path / "boxes.zarr"), "-o", str(tmp_path / "model.pt"), "-a", "cnn1",
                 "--epochs", "1", "--fc-width", "8", "--batch-size", "4", env=job_env, cwd=tmp_path)
    assert wait_for(job) == ["COMPLETED"]
    assert "Requeue=0" in run("scontrol", "show", "job", "-o", str(job)).stdout  # training cannot resume
    _, meta = tomocam.load_checkpoint(tmp_path / "model.pt")
    assert meta.architecture == "cnn1" and meta.classes == classes and meta.input_size == 16
