"""SLURM site settings, and what is built from them: sbatch options, shell variables, a dask-jobqueue cluster.

The settings are the keys of the packaged ``slurm.yaml`` (partition, account, walltime, GPUs per node, how to
activate the environment, ...), which is also the one copy of their defaults. They resolve in one place,
:func:`load_slurm_config`: the packaged defaults, then a site file (``$TOMOCAM_SLURM_CONFIG`` or ``--config``),
then ``TOMOCAM_<KEY>`` environment variables. Everything else reads the resolved dict:

- :func:`sbatch_options` gives the ``sbatch`` options with which ``scripts/slurm/*.sbatch`` submit themselves
  (GPU requests are left out when ``gpus_per_node`` is 0, which is how CI runs them CPU-only);
- :func:`shell_assignments` gives ``export TOMOCAM_...`` lines that the batch scripts evaluate inside the job;
- :func:`slurm_cluster` gives a :class:`dask_jobqueue.SLURMCluster` whose worker jobs hold one GPU each (or are
  CPU workers), for ``tomocam explain --cluster slurm`` started from a login node.

``tomocam slurm {settings,env,sbatch-options,job-script}`` (:mod:`tomocam.cli.slurm`) prints these.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tomocam.deploy.warmup import worker_preloads
from tomocam.errors import InputError

if TYPE_CHECKING:
    from dask_jobqueue import SLURMCluster


@cache
def default_settings_text() -> str:
    """The packaged ``slurm.yaml``, comments included: every setting, its default and what it means."""
    return resources.files("tomocam.deploy").joinpath("slurm.yaml").read_text()


def default_settings() -> dict[str, Any]:
    """The built-in defaults: the settings of the packaged ``slurm.yaml``."""
    return dict(yaml.safe_load(default_settings_text()))


_INTEGER_KEYS = (
    "gpus_per_node", "cpus_per_worker", "retire_margin", "lifetime_stagger", "requeue_limit", "array_limit",
)
_POSITIVE_KEYS = ("cpus_per_worker",)
_LIST_KEYS = ("sbatch_extra", "array_exclude")

#: The kinds of batch job in scripts/slurm/, each named after its script.
JOB_KINDS = ("explain", "explain-array", "explain-multinode", "train")

CONFIG_ENV = "TOMOCAM_SLURM_CONFIG"


def env_name(key: str) -> str:
    """The environment variable that overrides setting ``key``: ``gpus_per_node`` -> ``TOMOCAM_GPUS_PER_NODE``."""
    return f"TOMOCAM_{key.upper()}"


def default_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The site settings file used when none is given: ``$TOMOCAM_SLURM_CONFIG``, else None (defaults only)."""
    environ = os.environ if environ is None else environ
    return Path(environ[CONFIG_ENV]).expanduser() if environ.get(CONFIG_ENV) else None


def load_slurm_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Resolve the SLURM settings: packaged defaults, then the YAML file, then ``TOMOCAM_<KEY>`` variables.

    ``path`` None means :func:`default_config_path`. ``environ`` defaults to ``os.environ``; pass ``{}`` to ignore
    the environment. Raises InputError for a missing or malformed file, an unknown key, or a bad value.
    """
    environ = os.environ if environ is None else environ
    config = default_settings()
    file = Path(path).expanduser() if path is not None else default_config_path(environ)
    if file is not None:
        config.update(_read_yaml(file, keys=list(config)))
    for key in list(config):
        if env_name(key) in environ:
            config[key] = _from_env(key, environ[env_name(key)])
    return _validated(config, source=f"{file}" if file is not None else "the built-in defaults")


def _read_yaml(file: Path, keys: list[str]) -> dict[str, Any]:
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
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise InputError(
            f"SLURM settings file '{file}' has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"expected some of: {', '.join(keys)}"
        )
    return data


def _from_env(key: str, text: str) -> Any:
    """An environment variable's text as a setting value: empty or 'null' is None; lists are shell-split."""
    if key in _LIST_KEYS:
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
    for key in _LIST_KEYS:
        items = config[key] if config[key] is not None else []
        if isinstance(items, str) or not all(isinstance(item, str) for item in items):
            raise InputError(f"SLURM setting '{key}' must be a list of strings, found {items!r}")
        config[key] = list(items)
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


_SLURM_MEMORY = re.compile(r"^(\d+)([KMGT]?)$", re.IGNORECASE)


def memory_bytes(text: str) -> int:
    """Bytes in a memory size: as ``sbatch --mem`` reads it (``32G``, ``500M``, ``4000``: binary units, a bare
    number is MiB) or with a unit dask reads (``32GB``, ``500MiB``)."""
    match = _SLURM_MEMORY.match(text.strip())
    if match:
        number, unit = int(match.group(1)), match.group(2).upper() or "M"
        return number * 1024 ** ("KMGT".index(unit) + 1)
    from dask.utils import parse_bytes

    try:
        return int(parse_bytes(text))
    except (ValueError, TypeError):
        raise InputError(f"memory size {text!r} is not a size such as '32G' (sbatch), '32GB' or '500MiB'") from None


def sbatch_memory(nbytes: int) -> str:
    """A byte count as an ``sbatch --mem`` value in MiB, rounded up (never more than 1 MiB above the request)."""
    return f"{math.ceil(nbytes / 2**20)}M"


def workers_per_node(config: Mapping[str, Any]) -> int:
    """Dask workers (= SLURM tasks) per node: one per GPU, or one CPU worker when ``gpus_per_node`` is 0."""
    return config["gpus_per_node"] or 1


def sbatch_options(config: Mapping[str, Any], kind: str, array_size: int | None = None) -> list[str]:
    """The ``sbatch`` options with which a ``scripts/slurm/<kind>.sbatch`` job asks for its resources.

    explain, explain-array, explain-multinode: ``workers_per_node`` tasks per node, ``cpus_per_worker`` cores each,
    one GPU per task (``--gpus-per-node``; none when ``gpus_per_node`` is 0), ``mem_per_worker`` per task.
    explain-array needs ``array_size`` (number of tomograms) and gets ``--array=0-(n-1)``, ``%array_limit`` when
    that is set (tasks running at once). train: one task with one
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
        options.append(f"--mem={sbatch_memory(memory_bytes(config['mem_per_worker']) * tasks)}")
    if kind == "explain-array":
        if array_size is None or array_size < 1:
            raise InputError(f"an array job needs at least one tomogram, found {array_size}")
        limit = f"%{config['array_limit']}" if config["array_limit"] else ""
        options.append(f"--array=0-{array_size - 1}{limit}")
    options.extend(config["sbatch_extra"])
    return options


def shell_assignments(config: Mapping[str, Any]) -> str:
    """``export TOMOCAM_<KEY>=<value>`` lines for every setting, shell-quoted (None becomes an empty string), and
    ``TOMOCAM_WORKER_MEMORY``: ``mem_per_worker`` in bytes, for the workers' memory limit."""
    lines = []
    for key in config:
        value = config[key]
        if key in _LIST_KEYS:
            text = shlex.join(value)
        else:
            text = "" if value is None else str(value)
        lines.append(f"export {env_name(key)}={shlex.quote(text)}")
    if config["mem_per_worker"] is not None:  # in bytes for dask worker --memory-limit (which reads 4000 as bytes)
        lines.append(f"export TOMOCAM_WORKER_MEMORY={memory_bytes(config['mem_per_worker'])}")
    return "\n".join(lines)


#: Shell line that keeps Dask's INFO messages out of job logs (warnings and errors still show).
QUIET_DASK = "export DASK_LOGGING__DISTRIBUTED=warning"


def job_device_type(config: Mapping[str, Any]) -> str:
    """The device of the settings' worker jobs: ``cuda`` when they ask for GPUs, else ``cpu``."""
    return "cuda" if config["gpus_per_node"] else "cpu"


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
    unknown = sorted(set(overrides) - set(resolved))
    if unknown:
        raise InputError(
            f"unknown SLURM setting(s) {', '.join(map(repr, unknown))}; expected some of: {', '.join(resolved)}"
        )
    resolved.update(overrides)
    resolved = _validated(resolved, source="the given settings")

    directives = [f"--{key}={resolved[key]}" for key in ("qos", "constraint") if resolved[key] is not None]
    worker_args = [
        "--lifetime", f"{worker_lifetime_seconds(resolved)}s",
        "--lifetime-stagger", f"{resolved['lifetime_stagger']}s",
        *(arg for name in worker_preloads() for arg in ("--preload", name)),
    ]
    if resolved["gpus_per_node"]:
        directives.append("--gpus=1")
        worker_args += ["--resources", "GPU=1"]
    directives += resolved["sbatch_extra"]
    local_dir = resolved["local_dir"] or os.environ.get("TMPDIR") or "/tmp"
    nbytes = memory_bytes(resolved["mem_per_worker"] or "16G")
    prologue = [QUIET_DASK] + ([resolved["activate"]] if resolved["activate"] else [])
    cluster = SLURMCluster(
        queue=resolved["partition"],
        account=resolved["account"],
        walltime=resolved["time"],
        cores=resolved["cpus_per_worker"],
        processes=1,
        memory=f"{nbytes}B",  # the worker's memory limit
        job_mem=sbatch_memory(nbytes),  # what sbatch is asked for: exactly that, in MiB (jobqueue would round up)
        job_name="tomocam-worker",
        job_extra_directives=directives,
        job_script_prologue=prologue,
        worker_extra_args=worker_args,
        local_directory=local_dir,
    )
    if jobs is None:
        jobs = workers_per_node(resolved)
    if jobs:
        cluster.scale(jobs=jobs)
    return cluster


def slurm_worker_device(requested: str, config: Mapping[str, Any]) -> str:
    """The device of ``--cluster slurm``'s worker jobs for ``--device requested``, whatever the login node has:
    ``auto`` follows the settings (``cuda:0`` when ``gpus_per_node`` > 0), ``cpu`` makes CPU workers, and
    ``cuda`` needs settings that ask for GPUs."""
    if requested == "auto":
        return "cuda:0" if job_device_type(config) == "cuda" else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda"):
        if not config["gpus_per_node"]:
            raise InputError(
                f"--device {requested} with --cluster slurm needs GPU worker jobs, but the SLURM settings have "
                "gpus_per_node 0; set it (or TOMOCAM_GPUS_PER_NODE) to the GPUs of a node"
            )
        return "cuda:0"
    raise InputError(f"unknown --device '{requested}'; expected auto, cpu or cuda")


def check_submittable(job_script: str) -> None:
    """Ask SLURM whether it would accept ``job_script`` (``sbatch --test-only``: nothing is submitted).

    :class:`InputError` with SLURM's reason when not (an unknown partition, a GPU request on a CPU partition, more
    memory than a node has), so that a rejected worker job is one line rather than a cluster waiting forever.
    """
    try:
        out = subprocess.run(["sbatch", "--test-only"], input=job_script, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise InputError("--cluster slurm needs SLURM's sbatch on the PATH (run it on a login node)") from None
    except subprocess.TimeoutExpired:
        raise InputError("sbatch --test-only did not answer within 60 s: is the SLURM controller up?") from None
    if out.returncode != 0:
        reason = "; ".join(line.strip() for line in (out.stderr + out.stdout).splitlines() if line.strip())
        raise InputError(
            f"SLURM refuses the worker job ({reason}); check partition, gpus_per_node (0 on a CPU partition) and "
            "mem_per_worker in the SLURM settings ('tomocam slurm job-script' shows the job)"
        )


def active_jobs(job_ids: list[str]) -> set[str] | None:
    """The jobs of ``job_ids`` that SLURM still has pending or running (``squeue``); ended ones are left out.

    None when SLURM cannot be asked (no ``squeue``, or no answer from the controller), which callers must not
    take for "every job ended": a controller busy for a minute is common on a large cluster.
    """
    if not job_ids:
        return set()
    try:
        out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:  # every job ended long enough ago to be purged ("Invalid job id"), or no controller
        return set() if "invalid job id" in out.stderr.lower() else None
    return set(out.stdout.split()) & set(job_ids)


def job_running(job_id: str) -> bool | None:
    """Whether SLURM still has job ``job_id`` pending or running; None when SLURM cannot be asked."""
    active = active_jobs([job_id])
    return None if active is None else job_id in active
