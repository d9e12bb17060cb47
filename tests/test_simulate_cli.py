"""`tomocam simulate subtomograms|tomogram` through the CLI: outputs, recorded command, clear errors."""

from __future__ import annotations

import mrcfile
import pandas as pd
from typer.testing import CliRunner

from tomocam.cli.main import app
from tomocam.errors import InputError
from tomocam.simulate import open_dataset


def test_subtomograms_command(tmp_path):
    out = tmp_path / "d.zarr"
    r = CliRunner().invoke(app, ["simulate", "subtomograms", str(out), "-n", "2", "--shapes", "rod,ring",
                                 "--box", "16", "--voxel-size", "20", "--snr", "0.5", "--background", "-j", "1"])
    assert r.exit_code == 0, r.output
    ds = open_dataset(out)
    assert ds.classes == ["rod", "ring", "background"] and ds.volumes.shape == (6, 16, 16, 16)
    assert ds.attrs["acquisition"]["snr"] == 0.5 and ds.attrs["sampling"]["background"] is True


def test_tomogram_command(tmp_path):
    out = tmp_path / "t.mrc"
    r = CliRunner().invoke(app, ["simulate", "tomogram", str(out), "--shape", "30,60,60", "-n", "3",
                                 "--shapes", "shell,disc", "--snr", "inf"])
    assert r.exit_code == 0, r.output
    with mrcfile.open(out) as mrc:
        assert mrc.data.shape == (30, 60, 60) and float(mrc.voxel_size.z) == 10.0
    table = pd.read_csv(tmp_path / "t_particles.csv")
    assert len(table) == 3 and set(table.class_name) == {"shell", "disc"}
    assert (tmp_path / "t_mask.mrc").is_file()


def test_bad_options_are_input_errors(tmp_path):
    runner = CliRunner()
    for args in (["tomogram", str(tmp_path / "x.mrc"), "--shape", "30,60"],
                 ["tomogram", str(tmp_path / "x.mrc"), "--snr", "loud"],
                 ["subtomograms", str(tmp_path / "y.zarr"), "--shapes", "banana"],
                 ["subtomograms", str(tmp_path / "y.zarr"), "-s", str(tmp_path / "missing.mrc")]):
        r = runner.invoke(app, ["simulate", *args])
        assert r.exit_code != 0 and isinstance(r.exception, InputError), args
    assert not (tmp_path / "x.mrc").exists()
