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


def _trained_checkpoint(tmp_path: Path) -> Path:
    provenance = {
        "command": "tomocam train d.zarr -o m.pt", "dataset": "d.zarr",
        "dataset_attrs": {"n_per_class": 50, "box": 16, "acquisition": {"snr": 0.5, "tilt_range": 60.0, "ctf": True},
                          "sampling": {"max_shift": 2.0, "distractors": 0.0}},
        "split": {"seed": 3, "n_fit": 64, "n_val": 16, "n_test": 20},
        "epochs": 2, "best_epoch": 2, "val_accuracy": 0.8125, "test_accuracy": 0.75,
        "history": [{"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.5, "val_loss": 0.8, "val_accuracy": 0.625},
                    {"epoch": 2, "train_loss": 0.4, "train_accuracy": 0.875, "val_loss": 0.5, "val_accuracy": 0.8125}],
    }
    return save_checkpoint(cnn2(num_classes=2, input_size=16, fc_width=8), tmp_path / "m.pt",
                           classes=["ribosome", "tric"], input_size=16, voxel_size=10.0, provenance=provenance)


def test_info_summarises_training_and_shows_the_history_on_request(tmp_path: Path):
    path = _trained_checkpoint(tmp_path)
    result = run("info", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "trained        best epoch 2 of 2; validation accuracy 0.812, test accuracy 0.750" in lines
    assert ("data           d.zarr (50 boxes per class, 16^3, SNR 0.5, tilt +-60 deg, shift <= 2 voxels)"
            in lines)
    assert "split          fit 64, validation 16, test 20 boxes (seed 3)" in lines
    assert f"(per-epoch history and full provenance: tomocam info {path} --history)" in result.stdout
    assert "0.6250" not in result.stdout  # no history without the flag
    full = run("info", str(path), "--history")
    assert full.returncode == 0, full.stderr
    epoch1 = next(line for line in full.stdout.splitlines() if "0.6250" in line)
    assert [v for v in epoch1.replace("│", " ").split()] == ["1", "0.9000", "0.5000", "0.8000", "0.6250"]


def test_info_on_a_plain_state_dict_says_how_to_make_a_checkpoint(tmp_path: Path):
    import torch

    path = tmp_path / "weights.pt"
    torch.save(cnn2(num_classes=2, input_size=16, fc_width=8).state_dict(), path)
    result = run("info", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "holds only weights (14 tensors)" in result.stderr and "tomocam.save_checkpoint(model" in result.stderr
