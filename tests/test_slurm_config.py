"""SLURM site settings (tomocam.deploy.slurm): the packaged defaults (found by an installed wheel too), loading and
precedence, validation, memory sizes as sbatch reads them, the sbatch options of each job kind, the shell
assignments the batch scripts evaluate, the dask-jobqueue job script of --cluster slurm, the workers' device, and
the `tomocam slurm` command. No SLURM needed (tests/test_slurm.py runs the scripts on a real one)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tomocam.cli.main import app
from tomocam.deploy.slurm import (
    check_submittable,
    default_settings,
    env_name,
    load_slurm_config,
    memory_bytes,
    sbatch_options,
    shell_assignments,
    slurm_cluster,
    slurm_worker_device,
    walltime_seconds,
    worker_lifetime_seconds,
)
from tomocam.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def write_yaml(path: Path, settings: dict) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


def test_packaged_yaml_is_the_one_copy_of_the_defaults():
    defaults = default_settings()
    assert load_slurm_config(environ={}) == defaults
    assert defaults["gpus_per_node"] == 1 and defaults["array_exclude"] == ["*_mask.mrc"]
    # configs/ holds example site files that override a few keys; none is a second copy of the defaults
    for site in (REPO / "configs").glob("*.yaml"):
        keys = set(yaml.safe_load(site.read_text()))
        assert keys < set(defaults), f"{site.name} repeats the defaults or names unknown keys"


@pytest.mark.slow
def test_an_installed_wheel_finds_its_packaged_settings(tmp_path):
    """Built into a wheel and installed with pip --target (not the source tree): the defaults load from the
    package data and `tomocam slurm settings --defaults` prints the packaged file."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(REPO)],
                   check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("tomocam-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)], check=True,
                   capture_output=True, cwd=tmp_path)
    code = ("import tomocam.deploy.slurm as s, tomocam, json; "
            "print(json.dumps([tomocam.__file__, s.load_slurm_config(environ={})]))")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TOMOCAM_")},
           "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    where, settings = json.loads(out.stdout)
    assert where.startswith(str(tmp_path / "site"))
    assert settings == default_settings()
    printed = subprocess.run([sys.executable, "-m", "tomocam", "slurm", "settings", "--defaults"], capture_output=True,
                             text=True, env=env, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (REPO / "tomocam" / "deploy" / "slurm.yaml").read_text()


def test_environment_beats_file_beats_defaults(tmp_path):
    file = write_yaml(tmp_path / "site.yaml", {"partition": "gpu", "account": "proj1", "time": "1-00:00:00"})
    environ = {
        "TOMOCAM_ACCOUNT": "proj2", "TOMOCAM_GPUS_PER_NODE": "0", "TOMOCAM_SBATCH_EXTRA": "--exclusive --mail-type=END"
    }
    config = load_slurm_config(file, environ=environ)
    assert config["partition"] == "gpu"  # file
    assert config["account"] == "proj2"  # environment over file
    assert config["time"] == "1-00:00:00"
    assert config["gpus_per_node"] == 0 and isinstance(config["gpus_per_node"], int)
    assert config["sbatch_extra"] == ["--exclusive", "--mail-type=END"]
    assert config["cpus_per_worker"] == default_settings()["cpus_per_worker"]  # default


def test_config_file_is_found_through_environment_variable(tmp_path):
    file = write_yaml(tmp_path / "other.yaml", {"qos": "high"})
    assert load_slurm_config(environ={"TOMOCAM_SLURM_CONFIG": str(file)})["qos"] == "high"


def test_empty_environment_value_means_site_default(tmp_path):
    file = write_yaml(tmp_path / "site.yaml", {"partition": "gpu"})
    assert load_slurm_config(file, environ={"TOMOCAM_PARTITION": ""})["partition"] is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"partion": "gpu"}, "unknown key(s) 'partion'"),
        ({"gpus_per_node": "four"}, "'gpus_per_node'"),
        ({"gpus_per_node": -1}, "must be >= 0, found -1"),
        ({"gpus_per_node": 2.5}, "'gpus_per_node'"),
        ({"requeue_limit": True}, "'requeue_limit'"),
        ({"cpus_per_worker": 0}, "must be positive, found 0"),
        ({"time": "4h"}, "time limit '4h'"),
        ({"mem_per_worker": "lots"}, "memory size 'lots'"),
        ({"sbatch_extra": "--exclusive"}, "'sbatch_extra' must be a list"),
    ],
)
def test_bad_settings_are_one_clear_error(tmp_path, settings, message):
    file = write_yaml(tmp_path / "bad.yaml", settings)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_slurm_config(file, environ={})


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(InputError, match="cannot read SLURM settings file '.*missing.yaml'"):
        load_slurm_config(tmp_path / "missing.yaml", environ={})
    (tmp_path / "bad.yaml").write_text("partition: [gpu\n")
    with pytest.raises(InputError, match="is not valid YAML"):
        load_slurm_config(tmp_path / "bad.yaml", environ={})
    (tmp_path / "list.yaml").write_text("- gpu\n")
    with pytest.raises(InputError, match="must hold a mapping of settings, found list"):
        load_slurm_config(tmp_path / "list.yaml", environ={})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("5:30", 330),
        ("04:00:00", 14400),
        ("2-12", 2 * 86400 + 12 * 3600),
        ("1-02:03", 86400 + 7200 + 180),
        ("1-02:03:04", 86400 + 7200 + 180 + 4),
    ],
)
def test_walltime_forms_of_sbatch(text, seconds):
    assert walltime_seconds(text) == seconds


def config_with(**settings) -> dict:
    return load_slurm_config(environ={env_name(k): str(v) for k, v in settings.items()})


def test_sbatch_options_one_worker_per_gpu():
    config = config_with(partition="gpu", account="proj", time="02:00:00", gpus_per_node=4, cpus_per_worker=8,
                         mem_per_worker="32GB", constraint="a100")
    options = sbatch_options(config, "explain")
    assert options == [
        "--time=02:00:00", "--ntasks-per-node=4", "--cpus-per-task=8", "--partition=gpu", "--account=proj",
        "--constraint=a100", "--gpus-per-node=4", f"--mem={4 * 32 * 10**9 // 2**20 + 1}M",
    ]


def test_sbatch_options_cpu_only_request_no_gpu():
    options = sbatch_options(config_with(gpus_per_node=0, cpus_per_worker=2, mem_per_worker="1GiB"), "explain")
    assert not any(o.startswith("--gpu") for o in options)
    assert "--ntasks-per-node=1" in options and "--cpus-per-task=2" in options and "--mem=1024M" in options


def test_sbatch_options_array_train_and_extra_last():
    config = config_with(gpus_per_node=8, sbatch_extra="--exclusive --nodes=4")
    array = sbatch_options(config, "explain-array", array_size=12)
    assert "--array=0-11" in array
    assert array[-2:] == ["--exclusive", "--nodes=4"]  # last, so that they override what comes before
    train = sbatch_options(config, "train")
    assert "--gpus-per-node=1" in train and "--ntasks-per-node=1" in train
    with pytest.raises(InputError, match="at least one tomogram"):
        sbatch_options(config, "explain-array", array_size=0)
    with pytest.raises(InputError, match="unknown SLURM job kind 'explain-all'"):
        sbatch_options(config, "explain-all")


def test_shell_assignments_round_trip_through_bash():
    config = config_with(activate="source '/opt/my env/bin/activate' && module load cuda", partition="gpu",
                         sbatch_extra="--mail-type=END '--comment=two words'")
    script = shell_assignments(config) + "\nenv -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env={}).stdout.decode()
    environ = dict(item.split("=", 1) for item in out.split("\0") if item.startswith("TOMOCAM_"))
    assert load_slurm_config(environ=environ) == config
    assert config["sbatch_extra"] == ["--mail-type=END", "--comment=two words"]


def test_jobqueue_worker_job_script_carries_the_settings():
    config = config_with(partition="gpu", account="proj", qos="high", time="01:00:00", gpus_per_node=4,
                         cpus_per_worker=6, mem_per_worker="20GB", activate="source /opt/tomocam/bin/activate",
                         retire_margin=300, lifetime_stagger=60)
    with slurm_cluster(config) as cluster:
        script = cluster.job_script()
    assert "#SBATCH -p gpu" in script
    assert "#SBATCH -A proj" in script
    assert "#SBATCH -t 01:00:00" in script
    assert "#SBATCH --cpus-per-task=6" in script
    assert "#SBATCH --qos=high" in script
    assert "#SBATCH --gpus=1" in script
    assert "source /opt/tomocam/bin/activate" in script
    assert "--resources GPU=1" in script
    assert worker_lifetime_seconds(config) == 3600 - 300 - 60
    assert f"--lifetime {3600 - 300 - 60}s --lifetime-stagger 60s" in script
    assert "--nthreads 6" in script and "--memory-limit 18.63GiB" in script


def test_jobqueue_cpu_workers_and_overrides():
    with slurm_cluster(config_with(gpus_per_node=4), gpus_per_node=0, partition="cpu") as cluster:
        script = cluster.job_script()
    assert "#SBATCH -p cpu" in script
    assert "--gpus" not in script and "GPU=1" not in script
    with pytest.raises(InputError, match="unknown SLURM setting"):
        slurm_cluster(config_with(), gpu=1)


def test_slurm_command_prints_settings_and_options(tmp_path, monkeypatch):
    for key in default_settings():
        monkeypatch.delenv(env_name(key), raising=False)
    file = write_yaml(tmp_path / "site.yaml", {"partition": "gpu", "gpus_per_node": 2, "array_limit": 4})
    runner = CliRunner()
    out = runner.invoke(app, ["slurm", "sbatch-options", "explain-array", "--array-size", "10", "--config", str(file)])
    assert out.exit_code == 0, out.output
    assert {"--gpus-per-node=2", "--array=0-9%4"} <= set(out.output.splitlines())
    out = runner.invoke(app, ["slurm", "env", "--config", str(file)])
    assert "export TOMOCAM_PARTITION=gpu" in out.output.splitlines()
    out = runner.invoke(app, ["slurm", "settings", "--config", str(file)])
    assert yaml.safe_load(out.output) == {**default_settings(), "partition": "gpu", "gpus_per_node": 2,
                                          "array_limit": 4}
    write_yaml(file, {"partition": "gpu", "gpus": 2})
    with pytest.raises(InputError, match=r"unknown key\(s\) 'gpus'"):  # main() turns it into one line, exit 2
        runner.invoke(app, ["slurm", "env", "--config", str(file)], catch_exceptions=False)


def test_seconds_left_parses_squeue_time_left(tmp_path):
    """The batch scripts size worker lifetimes from squeue's %L (time left) in each of its forms."""
    fake = tmp_path / "squeue"
    common = REPO / "scripts" / "slurm" / "common.sh"
    for shown, seconds in [("1-02:03:04", 93784), ("3:59:30", 14370), ("45:07", 2707), ("UNLIMITED", None)]:
        fake.write_text(f"#!/bin/sh\necho {shlex.quote(shown)}\n")
        fake.chmod(0o755)
        out = subprocess.run(
            ["bash", "-c", f"source {shlex.quote(str(common))}; tomocam_seconds_left"],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_JOB_ID": "1"},
        ).stdout.strip()
        assert out == ("" if seconds is None else str(seconds))


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("4000", 4000 * 2**20), ("1500M", 1500 * 2**20), ("32G", 32 * 2**30), ("1T", 2**40), ("512K", 2**19),
     ("32GB", 32 * 10**9), ("500MiB", 500 * 2**20)],
)
def test_memory_sizes_read_as_sbatch_reads_them(text, nbytes):
    assert memory_bytes(text) == nbytes


def test_worker_jobs_ask_sbatch_for_exactly_the_memory_set():
    """dask-jobqueue alone rounds 1.5 GB up to --mem=2G, which a 2000 MB node refuses: the request is exact."""
    with slurm_cluster(config_with(gpus_per_node=0, mem_per_worker="1500M")) as cluster:
        script = cluster.job_script()
    assert "#SBATCH --mem=1500M" in script and "--memory-limit 1.46GiB" in script
    assert "export DASK_LOGGING__DISTRIBUTED=warning" in script  # no Dask INFO lines in worker logs
    assert sbatch_options(config_with(gpus_per_node=2, mem_per_worker="1.5GB"), "explain")[-1] == "--mem=2862M"


def test_cluster_slurm_device_follows_the_settings_not_this_node():
    gpus, cpus = config_with(gpus_per_node=4), config_with(gpus_per_node=0)
    assert slurm_worker_device("auto", gpus) == "cuda:0" and slurm_worker_device("cuda", gpus) == "cuda:0"
    assert slurm_worker_device("auto", cpus) == "cpu" and slurm_worker_device("cpu", gpus) == "cpu"
    with pytest.raises(InputError, match="gpus_per_node 0"):
        slurm_worker_device("cuda", cpus)


def test_a_job_slurm_would_refuse_is_one_clear_error(tmp_path, monkeypatch):
    fake = tmp_path / "sbatch"  # sbatch --test-only as SLURM answers a GPU request on a CPU-only partition
    fake.write_text("#!/bin/sh\ncat >/dev/null\necho 'sbatch: error: Invalid generic resource (gres) "
                    "specification' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(InputError, match=r"SLURM refuses the worker job \(sbatch: error: Invalid generic resource"):
        check_submittable("#!/bin/bash\n#SBATCH --gpus=1\n")
    fake.write_text("#!/bin/sh\ncat >/dev/null\necho 'sbatch: Job 3 to start at now' >&2\n")
    check_submittable("#!/bin/bash\n")
