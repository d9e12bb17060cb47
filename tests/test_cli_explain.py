"""``tomocam explain`` through the real entry point: bad inputs give one red line, a non-zero exit and no store
that looks complete; a good run prints a summary."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from explain_models import matched_filter_checkpoint, particles_volume, write_mrc

from tomocam.cli.main import main
from tomocam.cli.report import disk_usage, human_bytes
from tomocam.errors import InputError
from tomocam.store import open_store

# The NaN-input case writes its bad tomogram with mrcfile, which warns about exactly what the test wants.
pytestmark = pytest.mark.filterwarnings("ignore:Data array contains NaN values:RuntimeWarning")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return matched_filter_checkpoint(tmp_path_factory.mktemp("m") / "mf.pt")


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["tomocam", "explain", *args, "--no-progress"])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_no_complete_store(path: Path) -> None:
    if path.exists():
        with pytest.raises(InputError):
            open_store(path)


def _bad_inputs(tmp: Path, model: Path) -> dict[str, tuple[list[str], str, Path]]:
    good = write_mrc(tmp / "good.mrc", particles_volume((32, 32, 32), n=2)[0])
    junk = tmp / "junk.mrc"
    junk.write_bytes(b"definitely not an MRC file" * 100)
    cut = tmp / "cut.mrc"
    cut.write_bytes(good.read_bytes()[:-1000])
    flat = write_mrc(tmp / "flat.mrc", np.zeros((32, 32), np.float32))
    small = write_mrc(tmp / "small.mrc", np.zeros((32, 32, 8), np.float32))
    nan_vol = np.zeros((32, 32, 32), np.float32)
    nan_vol[30, 1, 2] = np.nan
    nan = write_mrc(tmp / "nan.mrc", nan_vol)
    exists = tmp / "exists.zarr"
    exists.mkdir()
    blocker = tmp / "a-file"
    blocker.write_text("x")
    m = ["--model", str(model)]
    out = lambda name: tmp / f"{name}.zarr"  # noqa: E731
    return {
        "not an mrc": ([str(junk), *m, "-o", str(out("junk"))], "cannot be read as an MRC", out("junk")),
        "truncated": ([str(cut), *m, "-o", str(out("cut"))], "truncated", out("cut")),
        "2-d": ([str(flat), *m, "-o", str(out("flat"))], "not a 3-D volume", out("flat")),
        "smaller than a tile": ([str(small), *m, "-o", str(out("small"))], "smaller than one tile", out("small")),
        "nan": ([str(nan), *m, "-o", str(out("nan"))], "NaN or Inf voxels, e.g. at (z, y, x) = (30, 1, 2)", out("nan")),
        "unknown layer": ([str(good), *m, "--layer", "features.9", "-o", str(out("l"))], "unknown layer", out("l")),
        "unknown class": ([str(good), *m, "-c", "ribosome", "-o", str(out("c"))], "unknown class 'ribosome'", out("c")),
        "existing output": ([str(good), *m, "-o", str(exists)], "exists already", exists),
        "unwritable output": ([str(good), *m, "-o", str(blocker / "o.zarr")], "cannot write output",
                              blocker / "o.zarr"),
        "unset voxel size": ([str(good), *m, "--voxel-size", "0", "-o", str(out("v"))], "implausible", out("v")),
    }


CASES = ["not an mrc", "truncated", "2-d", "smaller than a tile", "nan", "unknown layer", "unknown class",
         "existing output", "unwritable output", "unset voxel size"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_nonzero_exit_and_no_complete_store(tmp_path, model, monkeypatch, capsys, case):
    args, message, output = _bad_inputs(tmp_path, model)[case]
    code, _, err = run(monkeypatch, capsys, *args)
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], err
    assert "Traceback" not in err
    assert_no_complete_store(output)


def test_good_run_prints_summary_and_writes_a_complete_store(tmp_path, model, monkeypatch, capsys):
    mrc = write_mrc(tmp_path / "t.mrc", particles_volume((32, 32, 40), n=4)[0])
    code, out, err = run(monkeypatch, capsys, str(mrc), "--model", str(model), "-o", str(tmp_path / "o.zarr"),
                         "-m", "respond", "-m", "gradcam", "-c", "rod", "-c", "0", "--workers", "1")
    assert code == 0, err
    assert "tiles" in out and "tiles/s" in out and str(tmp_path / "o.zarr") in out
    size = disk_usage(tmp_path / "o.zarr")
    assert f"{tmp_path / 'o.zarr'} ({human_bytes(size)} on disk)" in out and size > 0
    store = open_store(tmp_path / "o.zarr")
    assert store.classes == ["rod", "small"] and store.methods == ["respond", "gradcam"]
    assert store.attrs["command"].startswith("tomocam explain")
    # rerun: refused without flags, fine with --overwrite
    code, _, err = run(monkeypatch, capsys, str(mrc), "--model", str(model), "-o", str(tmp_path / "o.zarr"))
    assert code == 3 and "exists already" in err


def test_full_disk_is_one_line_exit_3_and_no_complete_store(tmp_path, model, monkeypatch, capsys):
    import errno

    import tomocam.pipeline.schedule as run_module

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o.zarr"))

    monkeypatch.setattr(run_module, "finalize", disk_full)  # the client-side writes of the last step
    mrc = write_mrc(tmp_path / "t.mrc", particles_volume((32, 32, 32), n=2)[0])
    code, _, err = run(monkeypatch, capsys, str(mrc), "--model", str(model), "-o", str(tmp_path / "o.zarr"))
    assert code == 3
    [line] = err.strip().splitlines()
    assert line.startswith(f"Error: the disk is full (No space left on device): '{tmp_path / 'o.zarr'}'; store ")
    assert "continue with: tomocam explain" in line and line.endswith("--resume")
    assert_no_complete_store(tmp_path / "o.zarr")


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, model, monkeypatch, capsys):
    mrc = write_mrc(tmp_path / "t.mrc", np.zeros((32, 32, 40), np.float32))
    code, out, _ = run(monkeypatch, capsys, str(mrc), "--model", str(model), "--dry-run")
    assert code == 0 and "3 x 3 x 4 = 36 tiles" in out
    assert not (tmp_path / "t.zarr").exists()


def test_dry_run_reports_what_a_real_run_would_refuse(tmp_path, model, monkeypatch, capsys):
    mrc = write_mrc(tmp_path / "t.mrc", np.zeros((32, 32, 40), np.float32))
    (tmp_path / "exists.zarr").mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = {
        "exists": ([str(tmp_path / "exists.zarr")], 3, "a real run would stop here: output"),
        "resume of a non-store": ([str(tmp_path / "exists.zarr"), "--resume"], 3, "it is not a zarr store"),
        "unwritable": ([str(blocker / "o.zarr")], 3, f"folder '{blocker}' is not writable"),
    }
    for name, (out, expected, message) in cases.items():
        code, stdout, err = run(monkeypatch, capsys, str(mrc), "--model", str(model), "--dry-run", "-o", *out)
        assert code == expected and "36 tiles" in stdout, name  # the plan, then the refusal
        assert len(err.strip().splitlines()) == 1 and message in err, (name, err)
    code, stdout, _ = run(monkeypatch, capsys, str(mrc), "--model", str(model), "--dry-run", "--overwrite",
                          "-o", str(tmp_path / "exists.zarr"))
    assert code == 0 and "checks  passed: --overwrite replaces the existing output" in stdout
    assert (tmp_path / "exists.zarr").is_dir()  # a dry run deletes nothing
    code, stdout, _ = run(monkeypatch, capsys, str(mrc), "--model", str(model), "--dry-run", "-o",
                          str(tmp_path / "new" / "o.zarr"))
    assert code == 0 and "checks  passed: the output folder is writable" in stdout
    assert not (tmp_path / "new").exists()


def test_resume_refuses_a_store_of_another_layout_in_one_line(tmp_path, model, monkeypatch, capsys):
    """A store whose recorded layout is not this code's (or, as before the phase-2 rework, has none) is refused on
    --resume with one line and exit 3, before anything is written into it."""
    from tomocam.store.layout import ATTRS_KEY, STORE_LAYOUT
    from tomocam.store.manifest import update_attrs

    mrc = write_mrc(tmp_path / "t.mrc", particles_volume((32, 32, 32), n=2)[0])
    store = tmp_path / "o.zarr"
    args = (str(mrc), "--model", str(model), "-o", str(store))
    assert run(monkeypatch, capsys, *args)[0] == 0
    assert open_store(store).attrs["layout"] == STORE_LAYOUT
    update_attrs(str(store), layout=STORE_LAYOUT - 1)
    code, _, err = run(monkeypatch, capsys, *args, "--resume")
    assert code == 3 and err.strip().splitlines() == [
        f"Error: cannot resume '{store}': it has store layout {STORE_LAYOUT - 1}, this tomocam writes layout "
        f"{STORE_LAYOUT}; rerun with --overwrite"]
    attrs = zarr.open_group(str(store), mode="r").attrs[ATTRS_KEY]
    assert attrs["complete"] is True  # refused before the resume marks the store incomplete
    zarr.open_group(str(store), mode="r+").attrs[ATTRS_KEY] = {k: v for k, v in attrs.items() if k != "layout"}
    code, _, err = run(monkeypatch, capsys, *args, "--resume")
    assert code == 3 and len(err.strip().splitlines()) == 1 and "store layout 1 (none recorded)" in err
    update_attrs(str(store), layout=STORE_LAYOUT)
    assert run(monkeypatch, capsys, *args, "--resume")[0] == 0  # this code's own layout resumes
