"""``tomocam --version`` and ``tomocam info`` through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tomocam import __version__
from tomocam.models import cnn2, save_checkpoint


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tomocam", *args], capture_output=True, text=True,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"tomocam {__version__}"


def test_info_lists_classes_and_layer_shapes(tmp_path: Path):
    path = save_checkpoint(cnn2(num_classes=2, input_size=16, fc_width=8), tmp_path / "m.pt",
                           classes=["ribosome", "tric"], input_size=16, voxel_size=13.5)
    result = run("info", str(path))
    assert result.returncode == 0, result.stderr
    assert "ribosome, tric" in result.stdout and "13.5 A/voxel" in result.stdout
    line = next(row for row in result.stdout.splitlines() if "features.pool2" in row and "MaxPool3d" in row)
    assert "64x2x2x2" in line and "default" in line


def test_info_on_a_foreign_file_is_one_line_and_exit_2(tmp_path: Path):
    path = tmp_path / "x.pt"
    path.write_text("hello")
    result = run("info", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "not a tomocam checkpoint" in result.stderr
    assert "Traceback" not in result.stderr
