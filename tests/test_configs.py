"""The example site settings in ``configs/`` load through the one settings loader and ask SLURM for what their
comments promise (the README points users at them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tomocam.deploy.slurm import job_device_type, load_slurm_config, sbatch_options

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_gpu_site_file_asks_for_four_gpus_and_one_worker_per_gpu():
    config = load_slurm_config(CONFIGS / "slurm-gpu.yaml", environ={})
    options = sbatch_options(config, "explain")
    assert "--partition=gpu" in options and "--gpus-per-node=4" in options
    assert "--ntasks-per-node=4" in options and "--cpus-per-task=8" in options
    assert "--mem=131072M" in options  # 32G per worker, 4 workers on the node
    assert job_device_type(config) == "cuda"


def test_cpu_site_file_asks_for_no_gpu():
    config = load_slurm_config(CONFIGS / "slurm-cpu.yaml", environ={})
    options = sbatch_options(config, "explain")
    assert "--partition=cpu" in options and not any(o.startswith("--gpus") for o in options)
    assert "--ntasks-per-node=1" in options and "--cpus-per-task=32" in options
    assert job_device_type(config) == "cpu"


@pytest.mark.parametrize("name", ["slurm-gpu.yaml", "slurm-cpu.yaml"])
def test_site_files_name_only_known_keys(name):
    load_slurm_config(CONFIGS / name, environ={})  # an unknown key or bad value is an InputError
