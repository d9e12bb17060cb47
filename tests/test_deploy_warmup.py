"""The worker warm-up preload (:mod:`tomocam.deploy.warmup`): it keeps the user's configured preloads, and after it
a CAM pass imports nothing more (the imports a fresh worker would otherwise pay inside its first task)."""

from __future__ import annotations

import json
import subprocess
import sys

import dask

from tomocam.deploy.warmup import PRELOAD, worker_preloads


def test_worker_preloads_keep_the_configured_ones_and_add_the_warm_up_once():
    with dask.config.set({"distributed.worker.preload": ["explain_models"]}):
        assert worker_preloads() == ["explain_models", PRELOAD]
    with dask.config.set({"distributed.worker.preload": [PRELOAD, "other"]}):
        assert worker_preloads() == [PRELOAD, "other"]
    with dask.config.set({"distributed.worker.preload": []}):
        assert worker_preloads() == [PRELOAD]


def test_the_command_prints_dask_worker_arguments():
    out = subprocess.run([sys.executable, "-m", PRELOAD], capture_output=True, text=True, check=True,
                         env={"DASK_DISTRIBUTED__WORKER__PRELOAD": '["explain_models"]', "PATH": ""})
    assert out.stdout.split() == ["--preload", "explain_models", "--preload", PRELOAD]


CHECK = """
import json, sys, torch
from tomocam.deploy.warmup import warm_up
from tomocam.models import build_model
print(warm_up())
model = build_model("cnn2", num_classes=5)
before = set(sys.modules)
from tomocam import compute_cams
import tomocam.pipeline.explain_tiles, tomocam.pipeline.stitch_boxes
result = compute_cams(model, torch.zeros(2, 1, 40, 40, 40), "features.pool2")
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_after_the_warm_up_a_cam_pass_imports_nothing():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    device, imported = out.stdout.strip().splitlines()
    assert device == "cpu"
    assert json.loads(imported) == []
