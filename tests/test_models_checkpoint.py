"""Checkpoints round-trip, refuse foreign files, and never execute code while loading."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

import tomocam
from tomocam.errors import CheckpointError
from tomocam.models import build_model, cnn1, cnn2, load_checkpoint, register_architecture, save_checkpoint


def test_round_trip_keeps_weights_and_metadata(tmp_path: Path):
    model = cnn2(num_classes=3, input_size=16, fc_width=8).eval()
    path = save_checkpoint(model, tmp_path / "m.pt", classes=["ribosome", "proteasome", "tric"], input_size=16,
                           voxel_size=10.0, polarity="dark", provenance={"seed": 3, "command": "tomocam train"})
    loaded, meta = load_checkpoint(path)
    x = torch.randn(2, 1, 16, 16, 16)
    torch.testing.assert_close(loaded(x), model(x))
    assert not loaded.training
    assert meta.architecture == "cnn2" and meta.arch_kwargs["num_classes"] == 3
    assert meta.classes == ["ribosome", "proteasome", "tric"]
    assert (meta.input_size, meta.voxel_size, meta.polarity) == (16, 10.0, "dark")
    assert meta.cam_layer == "features.pool2" and meta.normalisation == "zscore"
    assert meta.provenance == {"seed": 3, "command": "tomocam train"}
    assert len(meta.sha256) == 64


def test_checkpoint_file_permissions_follow_the_umask(tmp_path: Path):
    old = os.umask(0o022)
    try:
        path = save_checkpoint(cnn2(num_classes=2, input_size=16, fc_width=8), tmp_path / "m.pt", classes=["a", "b"],
                               input_size=16, voxel_size=10)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_class_count_must_match_the_model(tmp_path: Path):
    with pytest.raises(CheckpointError, match="2 class names"):
        save_checkpoint(cnn1(num_classes=3, input_size=16, fc_width=8), tmp_path / "m.pt", classes=["a", "b"],
                        input_size=16, voxel_size=10)


class Payload:
    """Unpickling this would create a file: the marker proves whether code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_with_a_payload_is_refused_and_does_not_run(tmp_path: Path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "tomocam-checkpoint", "payload": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="not a tomocam checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()
    # And the same payload really runs under a plain, unsafe load: the test can tell.
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    pickle.loads(data)
    assert marker.exists()


@pytest.mark.parametrize("content", [b"", b"MRC-not-a-model" * 10])
def test_foreign_files_are_refused(tmp_path: Path, content: bytes):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a tomocam checkpoint"):
        load_checkpoint(path)


def test_plain_state_dict_is_refused(tmp_path: Path):
    path = tmp_path / "sd.pt"
    torch.save(cnn2(num_classes=2, input_size=16, fc_width=8).state_dict(), path)
    with pytest.raises(CheckpointError, match="no 'tomocam-checkpoint' header"):
        load_checkpoint(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


class TinyNet(nn.Module):
    default_cam_layer = "conv"

    def __init__(self, num_classes: int, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, width, 3)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3, 4)))


def test_user_architecture_registration_round_trip(tmp_path: Path):
    register_architecture("test-tiny")(TinyNet)
    model = build_model("test-tiny", num_classes=2, width=4)
    path = save_checkpoint(model, tmp_path / "t.pt", classes=["a", "b"], input_size=8, voxel_size=5.0)
    loaded, meta = load_checkpoint(path)
    assert isinstance(loaded, TinyNet) and meta.cam_layer == "conv"
    result = tomocam.compute_cams(loaded, torch.randn(1, 1, 8, 8, 8), meta.cam_layer)
    assert result.maps["respond"].shape == (1, 2, 6, 6, 6)


def test_unregistered_architecture_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "u.pt"
    model = cnn2(num_classes=2, input_size=16, fc_width=8)
    save_checkpoint(model, path, classes=["a", "b"], input_size=16, voxel_size=10)
    record = torch.load(path, weights_only=True)
    record["architecture"] = "not-registered"
    torch.save(record, path)
    with pytest.raises(CheckpointError, match="unknown architecture 'not-registered'"):
        load_checkpoint(path)


def test_unregistered_model_cannot_be_saved(tmp_path: Path):
    with pytest.raises(CheckpointError, match="register"):
        save_checkpoint(nn.Linear(2, 2), tmp_path / "l.pt", classes=["a", "b"], input_size=2, voxel_size=1)
