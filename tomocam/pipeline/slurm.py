"""SLURM site settings, and the two things built from them: sbatch options and a dask-jobqueue cluster.

The settings are the keys of ``configs/slurm.yaml`` (partition, account, walltime, GPUs per node, how to activate
the environment, ...). They resolve in one place, :func:`load_slurm_config`: built-in defaults, then the YAML
file, then ``TOMOCAM_<KEY>`` environment variables. Everything else reads the resolved dict:

- :func:`sbatch_options` gives the ``sbatch`` command-line options with which ``scripts/slurm/*.sbatch`` submit
  themselves (GPU requests are left out when ``gpus_per_node`` is 0, which is how CI runs them CPU-only);
- :func:`shell_assignments` gives ``export TOMOCAM_...`` lines that the batch scripts evaluate inside the job;
- :func:`slurm_cluster` gives a :class:`dask_jobqueue.SLURMCluster` whose worker jobs hold one GPU each, for
  ``tomocam explain --cluster slurm`` started from a login node.

``python -m tomocam.pipeline.slurm {env,sbatch-options,job-script}`` prints these for the shell scripts and for
users who want to see what would be submitted.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tomocam.errors import InputError

if TYPE_CHECKING:
    from dask_jobqueue import SLURMCluster

#: The built-in defaults: the same values as the repository's configs/slurm.yaml (a test keeps them equal).
DEFAULTS: dict[str, Any] = {
    "partition": None,
    "account": None,
    "qos": None,
    "time": "04:00:00",
    "gpus_per_node": 4,
    "cpus_per_worker": 8,
    "mem_per_worker": "32GB",
    "constraint": None,
    "sbatch_extra": [],
    "activate": None,
    "shared_dir": "~/.tomocam/slurm",
    "local_dir": None,
    "retire_margin": 180,
    "lifetime_stagger": 30,
    "requeue_limit": 3,
}

_INTEGER_KEYS = ("gpus_per_node", "cpus_per_worker", "retire_margin", "lifetime_stagger", "requeue_limit")
_POSITIVE_KEYS = ("cpus_per_worker",)

#: The kinds of batch job in scripts/slurm/, each named after its script.
JOB_KINDS = ("explain", "explain-array", "explain-multinode", "train")

CONFIG_ENV = "TOMOCAM_SLURM_CONFIG"
REPO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "slurm.yaml"


def env_name(key: str) -> str:
    """The environment variable that overrides setting ``key``: ``gpus_per_node`` -> ``TOMOCAM_GPUS_PER_NODE``."""
    return f"TOMOCAM_{key.upper()}"


def default_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The settings file used when none is given: ``$TOMOCAM_SLURM_CONFIG``, else the repository's
    ``configs/slurm.yaml`` when tomocam runs from a checkout, else None (built-in defaults only)."""
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]).expanduser()
    return REPO_CONFIG if REPO_CONFIG.is_file() else None


def load_slurm_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Resolve the SLURM settings: built-in defaults, then the YAML file, then ``TOMOCAM_<KEY>`` variables.

    ``path`` None means :func:`default_config_path`. ``environ`` defaults to ``os.environ``; pass ``{}`` to ignore
    the environment. Raises InputError for a missing or malformed file, an unknown key, or a bad value.
    """
    environ = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    file = Path(path).expanduser() if path is not None else default_config_path(environ)
    if file is not None:
        config.update(_read_yaml(file))
    for key in DEFAULTS:
        if env_name(key) in environ:
            config[key] = _from_env(key, environ[env_name(key)])
    return _validated(config, source=f"{file}" if file is not None else "the built-in defaults")


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text()
    except OSError as exc:
        raise InputError(f"cannot read SLURM settings file '{file}': {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"SLURM settings file '{file}' is not valid YAML: {exc}".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"SLURM settings file '{file}' must hold a mapping of settings, found {type(data).__name__}")
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise InputError(
            f"SLURM settings file '{file}' has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"expected some of: {', '.join(DEFAULTS)}"
        )
    return data


def _from_env(key: str, text: str) -> Any:
    """An environment variable's text as a setting value: empty or 'null' is None; sbatch_extra is shell-split."""
    if key == "sbatch_extra":
        return shlex.split(text)
    if text.strip() in ("", "null", "None"):
        return None
    return text


def _validated(config: dict[str, Any], source: str) -> dict[str, Any]:
    """``config`` with integers as int and strings as str; InputError naming the setting for a bad value."""
    for key in _INTEGER_KEYS:
        value = config[key]
        where = f"SLURM setting '{key}' (from {source} or ${env_name(key)})"
        try:
            number = int(value) if not isinstance(value, (bool, float)) or float(value).is_integer() else None
        except (TypeError, ValueError):
            number = None
        if number is None or isinstance(value, bool):
            raise InputError(f"{where} must be an integer, found {value!r}")
        lowest = 1 if key in _POSITIVE_KEYS else 0
        if number < lowest:
            raise InputError(f"{where} must be {'positive' if lowest else '>= 0'}, found {number}")
        config[key] = number
    extra = config["sbatch_extra"]
    if extra is None:
        extra = []
    if isinstance(extra, str) or not all(isinstance(item, str) for item in extra):
        raise InputError(f"SLURM setting 'sbatch_extra' must be a list of option strings, found {extra!r}")
    config["sbatch_extra"] = list(extra)
    if config["time"] is None:
        raise InputError(f"SLURM setting 'time' (from {source} or $TOMOCAM_TIME) must be a walltime, found null")
    config["time"] = str(config["time"])
    walltime_seconds(config["time"])
    for key in ("partition", "account", "qos", "mem_per_worker", "constraint", "activate", "shared_dir", "local_dir"):
        if config[key] is not None:
            config[key] = str(config[key])
    if config["mem_per_worker"] is not None:
        memory_bytes(config["mem_per_worker"])
    return config


_TIME_FORMS = (
    (re.compile(r"^(\d+)$"), ("m",)),
    (re.compile(r"^(\d+):(\d+)$"), ("m", "s")),
    (re.compile(r"^(\d+):(\d+):(\d+)$"), ("h", "m", "s")),
    (re.compile(r"^(\d+)-(\d+)$"), ("d", "h")),
    (re.compile(r"^(\d+)-(\d+):(\d+)$"), ("d", "h", "m")),
    (re.compile(r"^(\d+)-(\d+):(\d+):(\d+)$"), ("d", "h", "m", "s")),
)
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def walltime_seconds(text: str) -> int:
    """Seconds in a SLURM time limit, in any form ``sbatch --time`` takes: ``minutes``, ``minutes:seconds``,
    ``hours:minutes:seconds``, ``days-hours``, ``days-hours:minutes``, ``days-hours:minutes:seconds``."""
    for pattern, units in _TIME_FORMS:
        match = pattern.match(text.strip())
        if match:
            return sum(int(value) * _UNIT_SECONDS[unit] for value, unit in zip(match.groups(), units))
    raise InputError(
        f"SLURM time limit {text!r} is not one of minutes, minutes:seconds, hours:minutes:seconds, days-hours, "
        "days-hours:minutes, days-hours:minutes:seconds"
    )


def memory_bytes(text: str) -> int:
    """Bytes in a memory size such as ``32GB``, ``500MiB`` or ``4G`` (dask's parser)."""
    from dask.utils import parse_bytes

    try:
        return int(parse_bytes(text))
    except (ValueError, TypeError):
        raise InputError(f"memory size {text!r} is not a size such as '32GB' or '500MiB'") from None


def workers_per_node(config: Mapping[str, Any]) -> int:
    """Dask workers (= SLURM tasks) per node: one per GPU, or one CPU worker when ``gpus_per_node`` is 0."""
    return config["gpus_per_node"] or 1


def sbatch_options(config: Mapping[str, Any], kind: str, array_size: int | None = None) -> list[str]:
    """The ``sbatch`` options with which a ``scripts/slurm/<kind>.sbatch`` job asks for its resources.

    explain, explain-array, explain-multinode: ``workers_per_node`` tasks per node, ``cpus_per_worker`` cores each,
    one GPU per task (``--gpus-per-node``; none when ``gpus_per_node`` is 0), ``mem_per_worker`` per task.
    explain-array needs ``array_size`` (number of tomograms) and gets ``--array=0-(n-1)``. train: one task with one
    GPU (or none). ``sbatch_extra`` comes last, so that it can override anything before it.
    """
    if kind not in JOB_KINDS:
        raise InputError(f"unknown SLURM job kind {kind!r}; expected one of {', '.join(JOB_KINDS)}")
    tasks = 1 if kind == "train" else workers_per_node(config)
    gpus = min(config["gpus_per_node"], 1) if kind == "train" else config["gpus_per_node"]
    options = [f"--time={config['time']}", f"--ntasks-per-node={tasks}", f"--cpus-per-task={config['cpus_per_worker']}"]
    for key in ("partition", "account", "qos", "constraint"):
        if config[key] is not None:
            options.append(f"--{key}={config[key]}")
    if gpus:
        options.append(f"--gpus-per-node={gpus}")
    if config["mem_per_worker"] is not None:
        megabytes = math.ceil(memory_bytes(config["mem_per_worker"]) * tasks / 2**20)
        options.append(f"--mem={megabytes}M")
    if kind == "explain-array":
        if array_size is None or array_size < 1:
            raise InputError(f"an array job needs at least one tomogram, found {array_size}")
        options.append(f"--array=0-{array_size - 1}")
    options.extend(config["sbatch_extra"])
    return options


def shell_assignments(config: Mapping[str, Any]) -> str:
    """``export TOMOCAM_<KEY>=<value>`` lines for every setting, shell-quoted; None becomes an empty string."""
    lines = []
    for key in DEFAULTS:
        value = config[key]
        if key == "sbatch_extra":
            text = shlex.join(value)
        else:
            text = "" if value is None else str(value)
        lines.append(f"export {env_name(key)}={shlex.quote(text)}")
    return "\n".join(lines)


def worker_lifetime_seconds(config: Mapping[str, Any]) -> int:
    """How long a worker job's Dask worker lives: the walltime less ``retire_margin`` and the stagger (>= 60 s)."""
    lifetime = walltime_seconds(config["time"]) - config["retire_margin"] - config["lifetime_stagger"]
    return max(lifetime, 60)


def slurm_cluster(
    config: Mapping[str, Any] | None = None, *, jobs: int | None = 0, **overrides: Any
) -> SLURMCluster:
    """A dask-jobqueue SLURMCluster for ``tomocam explain --cluster slurm``, from resolved SLURM settings.

    ``config`` None loads :func:`load_slurm_config`; ``overrides`` replace single settings (same keys, e.g.
    ``gpus_per_node=0`` for CPU workers). Each worker job is one Dask worker with one GPU (``--gpus=1``, a ``GPU=1``
    worker resource, so the GPU tasks of phase 1 land one per GPU; SLURM sets CUDA_VISIBLE_DEVICES to that GPU)
    and ``cpus_per_worker`` threads, or a CPU worker when ``gpus_per_node`` is 0. Workers retire
    ``retire_margin`` seconds before the walltime. ``jobs`` worker jobs are submitted at once (None: one node's
    worth, ``gpus_per_node`` or 1; 0: none, the caller scales or adapts the cluster itself).
    """
    from dask_jobqueue import SLURMCluster

    resolved = dict(load_slurm_config() if config is None else config)
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise InputError(
            f"unknown SLURM setting(s) {', '.join(map(repr, unknown))}; expected some of: {', '.join(DEFAULTS)}"
        )
    resolved.update(overrides)
    resolved = _validated(resolved, source="the given settings")

    directives = [f"--{key}={resolved[key]}" for key in ("qos", "constraint") if resolved[key] is not None]
    worker_args = [
        "--lifetime", f"{worker_lifetime_seconds(resolved)}s",
        "--lifetime-stagger", f"{resolved['lifetime_stagger']}s",
    ]
    if resolved["gpus_per_node"]:
        directives.append("--gpus=1")
        worker_args += ["--resources", "GPU=1"]
    directives += resolved["sbatch_extra"]
    local_dir = resolved["local_dir"] or os.environ.get("TMPDIR") or "/tmp"
    cluster = SLURMCluster(
        queue=resolved["partition"],
        account=resolved["account"],
        walltime=resolved["time"],
        cores=resolved["cpus_per_worker"],
        processes=1,
        memory=resolved["mem_per_worker"] or "16GB",
        job_name="tomocam-worker",
        job_extra_directives=directives,
        job_script_prologue=[resolved["activate"]] if resolved["activate"] else [],
        worker_extra_args=worker_args,
        local_directory=local_dir,
    )
    if jobs is None:
        jobs = workers_per_node(resolved)
    if jobs:
        cluster.scale(jobs=jobs)
    return cluster


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tomocam.pipeline.slurm``: print resolved settings for the batch scripts (and for users)."""
    parser = argparse.ArgumentParser(prog="python -m tomocam.pipeline.slurm", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="settings file (default: $TOMOCAM_SLURM_CONFIG or configs/slurm.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("env", help="print 'export TOMOCAM_<KEY>=value' lines for every setting")
    options = commands.add_parser("sbatch-options", help="print the sbatch options of a job, one per line")
    options.add_argument("kind", choices=JOB_KINDS)
    options.add_argument("--array-size", type=int, help="number of array tasks (explain-array)")
    commands.add_parser("job-script", help="print the worker job script of --cluster slurm")
    args = parser.parse_args(argv)
    try:
        config = load_slurm_config(args.config)
        if args.command == "env":
            print(shell_assignments(config))
        elif args.command == "sbatch-options":
            print("\n".join(sbatch_options(config, args.kind, args.array_size)))
        else:
            with slurm_cluster(config) as cluster:
                print(cluster.job_script())
    except InputError as exc:
        print(f"tomocam: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
