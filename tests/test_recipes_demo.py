"""``tomocam demo`` end to end on a tiny tomogram, with a small untrained model of the built-in classes
(the bundled model is trained separately): it writes a complete store, an overview PNG and pointing rates."""

from __future__ import annotations

import math
import sys

import torch

import tomocam
from tomocam.cli.main import main
from tomocam.models import cnn2
from tomocam.simulate import shape_names
from tomocam.store import open_store


def test_demo_writes_store_overview_and_pointing_rates(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    names = ["background", *shape_names()]
    model = tomocam.save_checkpoint(cnn2(num_classes=len(names), input_size=32, fc_width=8), tmp_path / "m.pt",
                                    classes=names, input_size=32, voxel_size=10.0)
    monkeypatch.setattr(sys, "argv", ["tomocam", "demo", "-o", str(tmp_path / "demo"), "--model", str(model),
                                      "--size", "64", "--particles", "4", "--workers", "1", "--no-progress"])
    try:
        main()
    except SystemExit as stop:
        assert not stop.code
    out = capsys.readouterr().out
    store = open_store(tmp_path / "demo" / "tomogram.zarr")
    assert store.classes == names and store.methods == ["respond", "gradcam"]
    png = (tmp_path / "demo" / "overview.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    rates = [float(line.split()[-1]) for line in out.splitlines() if line.strip().startswith(("Respond", "Grad"))]
    assert len(rates) == 2 and all(0 <= r <= 1 and not math.isnan(r) for r in rates)
    assert "(chance)" in out and f"scores {1 / 7:.2f}" in out  # 7 particle classes; background does not compete
