"""Run a whole explain: plan, store, then the scheduler (:mod:`tomocam.pipeline.schedule`) beside the cluster's
start."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tomocam.errors import OutputError
from tomocam.pipeline.config import ExplainConfig
from tomocam.pipeline.plan import Plan, make_plan
from tomocam.pipeline.schedule import RunSummary, run_plan
from tomocam.store.create import check_output
from tomocam.store.lock import StoreLock
from tomocam.store.writer import StoreWriter


def prepare_run(config: ExplainConfig, output: str, cluster: str | None = None,
                on_plan: Callable[[Plan], None] | None = None) -> tuple[Plan, StoreWriter]:
    """Check the inputs, make the plan, check the output path ``output`` and create (or reopen) the store; returns
    the plan and the store's writer, ready for :func:`tomocam.pipeline.schedule.run_plan` (or a
    :class:`tomocam.pipeline.schedule.TomogramRun`). ``on_plan(plan)`` runs before anything is written."""
    if cluster == "slurm":  # the workers' device comes from the SLURM settings, not from this (login) node
        device = worker_device(config, cluster)
        plan = dataclasses.replace(make_plan(dataclasses.replace(config, device="cpu"), output), device=device)
    else:
        plan = make_plan(config, output)
    check_output(output, resume=config.resume, overwrite=config.overwrite)
    if on_plan is not None:
        on_plan(plan)
    writer = StoreWriter.open(plan.store_spec, resume=config.resume, overwrite=config.overwrite,
                              command=config.command)
    return plan, writer


def worker_device(config: ExplainConfig, cluster: str | None) -> str:
    """The device of the workers a run starts (one name for the concept): from the SLURM settings for SLURM
    workers (:func:`tomocam.deploy.slurm.slurm_worker_device`), else this machine's
    (:func:`tomocam.device.local_worker_device`, as :func:`make_plan` resolves it)."""
    if cluster == "slurm":
        from tomocam.deploy.slurm import load_slurm_config, slurm_worker_device

        return slurm_worker_device(config.device, load_slurm_config())
    from tomocam.device import local_worker_device

    return local_worker_device(config.device)


def explain_tomogram(
    config: ExplainConfig,
    *,
    client=None,
    workers: int | None = None,
    scheduler_file: str | None = None,
    cluster: str | None = None,
    progress: bool = False,
    on_plan=None,
) -> RunSummary:
    """Explain ``config.tomogram`` into the store ``config.output``; returns a :class:`RunSummary`.

    Inputs and settings are checked (and the output folder probed) before anything is written; the store gets
    its completion marker only once every part is written. With ``client`` given, it is used as is; otherwise a
    cluster is started or joined (:func:`tomocam.deploy.cluster.connect`) while the inputs are checked and the
    store created in a thread beside it: new workers import torch and warm their device up
    (:mod:`tomocam.deploy.warmup`) meanwhile, so a run pays the longer of the two, not both.
    ``on_plan(plan)`` is called once the plan is made (the CLI prints warnings there).

    The run holds the store's writer lock (:class:`tomocam.store.lock.StoreLock`) from before its first write to
    its end, failed or interrupted included: a second run on the same output stops at once, naming this one.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tomocam.deploy.cluster import connect
    from tomocam.deploy.slurm import job_running

    output = str(Path(config.output).expanduser().absolute())
    options: dict[str, Any] = {"resume": config.resume, "label_fraction": config.label_fraction,
                               "progress": progress}
    lock = StoreLock(output, command=config.command, job_running=job_running)
    try:
        check_output(output, resume=config.resume, overwrite=config.overwrite)  # before the lock makes its folder
    except OutputError:
        if Path(output).is_dir():  # a run writing it is the better reason to give: StoreLocked names that run
            with lock:
                pass
        raise
    with lock:
        if client is not None:
            return run_plan(*prepare_run(config, output, cluster, on_plan), client, **options)
        device = worker_device(config, cluster)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tomocam-plan") as pool:
            planned = pool.submit(prepare_run, config, output, cluster, on_plan)
            with connect(device=device, workers=workers, scheduler_file=scheduler_file, cluster=cluster) as (cl, info):
                plan, writer = planned.result()
                return run_plan(dataclasses.replace(plan, torch_threads=info.torch_threads), writer, cl, **options)
