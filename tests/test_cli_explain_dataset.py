"""``tomocam explain`` of a dataset through the real entry point: exit codes (0 all done, 2 a bad input while the
others complete, 3 stores in the way, 130 interrupted with the command that continues), the per-tomogram log
lines, and one tomogram path keeping today's single-store behaviour."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from explain_models import matched_filter_checkpoint, particles_volume, write_mrc

import tomocam.pipeline.schedule as pipeline_schedule
from tomocam.cli.main import main
from tomocam.dataset import INDEX_NAME, read_index
from tomocam.store import open_store


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("cli-dataset")
    model = matched_filter_checkpoint(root / "mf.pt")
    folder = root / "tomograms"
    folder.mkdir()
    for i, name in enumerate(["a", "b"]):
        write_mrc(folder / f"{name}.mrc", particles_volume((32, 32, 32), n=2, seed=i)[0])
    return {"model": model, "folder": folder}


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["tomocam", "explain", *args])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_bad_tomogram_exits_2_after_the_others_complete(data, tmp_path, monkeypatch, capsys):
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"junk" * 200)
    out = tmp_path / "out"
    code, stdout, err = run(monkeypatch, capsys, str(data["folder"]), str(junk), "--model", str(data["model"]),
                            "-o", str(out), "--workers", "1", "--no-progress")
    assert code == 2
    reasons = f"their reasons are in {out / INDEX_NAME}"
    assert err.strip().splitlines() == [f"Error: 1 of 3 tomograms failed (junk); {reasons}"]
    lines = stdout.splitlines()
    assert [line[:6] for line in lines[1:4]] == ["[1/3] ", "[2/3] ", "[3/3] "]  # in the order they finished
    done = {line.split(":")[0][6:]: line[6:] for line in lines[1:4]}
    assert done["a"].startswith("a: complete, 27 tiles") and done["b"].startswith("b: complete")
    assert done["junk"].startswith("junk: failed: tomogram") and "cannot be read as an MRC file" in done["junk"]
    assert any(line.split()[:2] == ["failed", "junk"] for line in lines)  # the summary lists what failed
    assert [r.status for r in read_index(out)] == ["complete", "complete", "failed"]
    open_store(out / "a.zarr")


def test_interrupted_dataset_exits_130_with_the_command_that_continues_it(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    finalize = pipeline_schedule.finalize

    def interrupt_second(writer, *args):
        if writer.path.endswith("b.zarr"):
            raise KeyboardInterrupt
        return finalize(writer, *args)

    monkeypatch.setattr(pipeline_schedule, "finalize", interrupt_second)
    args = [f"{data['folder']}/*.mrc", "--model", str(data["model"]), "-o", str(out), "--workers", "1",
            "--no-progress", "--overwrite"]
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 130
    message = err.strip().splitlines()[0]
    assert message.startswith(f"Interrupted: dataset '{out}' is incomplete (1 of 2 tomograms complete")
    command = shlex.split(message.split("continue with: ")[1])
    assert command[:2] == ["tomocam", "explain"] and command[-1] == "--resume" and "--overwrite" not in command
    assert [r.status for r in read_index(out)] == ["complete", "interrupted"]

    monkeypatch.setattr(pipeline_schedule, "finalize", finalize)
    code, stdout, err = run(monkeypatch, capsys, *command[2:])
    assert code == 0, err
    assert "2 of 2 complete (1 kept from an earlier run), 0 failed" in stdout
    assert [r.status for r in read_index(out)] == ["complete", "complete"]


def test_existing_stores_refuse_a_new_run_and_a_dataset_needs_an_output_folder(data, tmp_path, monkeypatch, capsys):
    (tmp_path / "out" / "a.zarr").mkdir(parents=True)
    code, _, err = run(monkeypatch, capsys, str(data["folder"]), "--model", str(data["model"]), "-o",
                       str(tmp_path / "out"))
    assert code == 3 and "holds stores of this dataset already (a.zarr)" in err
    assert not (tmp_path / "out" / INDEX_NAME).exists()
    code, _, err = run(monkeypatch, capsys, str(data["folder"]), "--model", str(data["model"]))
    assert code == 2 and "needs an output folder" in err


def test_dry_run_lists_the_dataset_and_writes_nothing(data, tmp_path, monkeypatch, capsys):
    code, stdout, _ = run(monkeypatch, capsys, str(data["folder"]), "--model", str(data["model"]), "-o",
                          str(tmp_path / "out"), "--dry-run")
    assert code == 0
    assert "a.zarr" in stdout and str(data["folder"] / "b.mrc") in stdout and "27 tiles" in stdout
    assert not (tmp_path / "out").exists()


def test_one_tomogram_path_keeps_the_single_store_beside_it_and_no_index(data, tmp_path, monkeypatch, capsys):
    mrc = tmp_path / "t.mrc"
    mrc.write_bytes((data["folder"] / "a.mrc").read_bytes())
    code, stdout, err = run(monkeypatch, capsys, str(mrc), "--model", str(data["model"]), "--workers", "1",
                            "--no-progress")
    assert code == 0, err
    open_store(tmp_path / "t.zarr")
    assert "dataset" not in stdout and not list(tmp_path.rglob(INDEX_NAME))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.mrc", "t.zarr"]


def test_a_full_disk_stops_the_dataset_with_exit_3_and_the_command_that_continues_it(data, tmp_path, monkeypatch,
                                                                                      capsys):
    import errno

    def disk_full(writer, *_args):
        raise OSError(errno.ENOSPC, "No space left on device", writer.path)

    monkeypatch.setattr(pipeline_schedule, "finalize", disk_full)  # the client-side writes of a tomogram's end
    out = tmp_path / "out"
    code, _, err = run(monkeypatch, capsys, str(data["folder"]), "--model", str(data["model"]), "-o", str(out),
                       "--workers", "1", "--no-progress")
    assert code == 3
    (line,) = [line for line in err.splitlines() if line.startswith("Error:")]
    assert "No space left on device" in line and f"dataset '{out}' is incomplete (0 of 2 tomograms complete" in line
    assert line.endswith("--resume") and [r.status for r in read_index(out)] == ["interrupted", "interrupted"]


@pytest.mark.slow
def test_ctrl_c_of_a_real_run_exits_130_and_its_command_completes_the_dataset(data, tmp_path):
    """SIGINT to the process group, as Ctrl-C sends it, once the first tomogram is done: the scheduler stops, the
    index says what is done, the stores' locks are released, and the printed command finishes the dataset."""
    import os
    import signal
    import subprocess

    from explain_models import matched_filter_checkpoint

    model = matched_filter_checkpoint(tmp_path / "slow.pt", delay=0.1)  # 0.1 s per batch: stoppable mid-run
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"t{i}.mrc").write_bytes((data["folder"] / "a.mrc").read_bytes())
    tests = str(Path(__file__).parent)
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import explain_models; "
            "from tomocam.cli.main import main; sys.argv = ['tomocam', 'explain', *sys.argv[1:]]; main()")
    args = [str(folder), "--model", str(model), "-o", str(tmp_path / "out"), "--workers", "1", "--block", "2",
            "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-c", code, tests, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("[1/3]"):
            os.killpg(proc.pid, signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    message = [line for line in err.splitlines() if line.startswith("Interrupted:")][0]
    assert "(1 of 3 tomograms complete" in message
    assert [r.status for r in read_index(tmp_path / "out")][0] == "complete"
    assert not list((tmp_path / "out").rglob(".tomocam.lock"))
    command = shlex.split(message.split("continue with: ")[1])
    done = subprocess.run([sys.executable, "-c", code, tests, *command[2:]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "3 of 3 complete (1 kept from an earlier run), 0 failed" in done.stdout


def test_a_copick_project_without_run_explains_every_run_into_run_named_stores(data, tmp_path, monkeypatch, capsys):
    import json

    import numpy as np
    from test_read_omezarr import write_ngff

    root = tmp_path / "proj"
    volumes = {name: particles_volume((32, 32, 32), n=2, seed=i)[0] for i, name in enumerate(["TS-1", "TS-2"])}
    for name, vol in volumes.items():
        image = root / "ExperimentRuns" / name / "VoxelSpacing10.000" / "wbp.zarr"
        image.parent.mkdir(parents=True)
        write_ngff(image, vol, "0.4")
    config = root / "copick_config.json"
    config.write_text(json.dumps({"name": "p", "pickable_objects": [], "overlay_root": f"local://{root}"}))
    out = tmp_path / "out"
    code, _, err = run(monkeypatch, capsys, str(config), "--tomo-type", "wbp", "--voxel-spacing", "10", "--model",
                       str(data["model"]), "-o", str(out), "--workers", "1", "--no-progress")
    assert code == 0, err
    assert [(r.name, r.status) for r in read_index(out)] == [("TS-1_wbp", "complete"), ("TS-2_wbp", "complete")]
    write_mrc(tmp_path / "ts1.mrc", volumes["TS-1"])
    mrc = tmp_path / "ts1.zarr"
    code, _, err = run(monkeypatch, capsys, str(tmp_path / "ts1.mrc"), "--model", str(data["model"]), "-o", str(mrc),
                       "--workers", "1", "--no-progress")
    assert code == 0, err
    np.testing.assert_allclose(open_store(out / "TS-1_wbp.zarr").heatmap("respond")[...],
                               open_store(mrc).heatmap("respond")[...], rtol=1e-5, atol=1e-6)
