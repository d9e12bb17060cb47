"""A Dask preload that warms a worker process up as it starts: ``--preload tomocam.deploy.warmup``.

A fresh worker process pays, on its first phase-1 task, for importing torch, zarr and the pipeline (the task is
unpickled on the worker's event loop, which then stalls), creating its CUDA context and loading cuDNN and cuBLAS,
and the lazy imports of torch's first batched backward pass (measured: docs/architecture.md, "Design decisions").

This preload does that work as the worker process starts, before it registers with the scheduler, while the
client is still checking the inputs and creating the store (:func:`tomocam.pipeline.run.explain_tomogram` starts
the cluster and plans at the same time), so the first task finds everything loaded. It runs in the worker's own
start, not in a thread beside it: a task unpickled while a thread is still importing the pipeline can meet a
partially imported module (Python resolves the two threads' circular import that way), as a SLURM test showed.
A failure here is only logged: the first task then meets the same problem and reports it.

It also hides one warning torch prints on every GPU run (:data:`CUBLAS_CONTEXT_WARNING`).
"""

from __future__ import annotations

import logging
import warnings

logger = logging.getLogger(__name__)

#: This module's name, as a Dask worker preload.
PRELOAD = "tomocam.deploy.warmup"

#: The modules whose functions the workers' tasks run, imported by name: ``deploy`` sits below the pipeline in the
#: import layers (docs/architecture.md), so it names them rather than importing them.
TASK_MODULES = ("tomocam.pipeline.explain_tiles", "tomocam.pipeline.stitch_boxes")

#: A warning torch prints when autograd's GPU thread first runs cuBLAS: it sets the primary context itself, so the
#: warning tells the user nothing (the maps are the same), but it would show on every GPU run.
CUBLAS_CONTEXT_WARNING = "Attempting to run cuBLAS, but there was no current CUDA context"


def worker_preloads() -> list[str]:
    """The preloads a worker should run: those Dask's configuration names (``distributed.worker.preload``, e.g. a
    module registering the user's architectures), then this one. Giving Dask a preload list replaces the
    configured one, so the two are merged here."""
    import dask

    configured = list(dask.config.get("distributed.worker.preload", None) or [])
    return [*configured, PRELOAD] if PRELOAD not in configured else configured


def warm_up() -> str:
    """Import what the pipeline's tasks use and run one tiny all-class CAM pass on this process's device (a GPU
    when one is visible); returns that device."""
    import importlib

    import torch
    from torch import nn

    from tomocam import compute_cams
    from tomocam.device import one_torch_thread

    for name in TASK_MODULES:  # zarr, zarrs and the stitching, as the tasks import them
        importlib.import_module(name)
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    model = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4**3, 3)).to(device)
    with one_torch_thread():  # on a CPU, no OpenMP team in this thread beside the task threads' (tomocam.device)
        compute_cams(model, torch.randn(2, 1, 4, 4, 4, device=device), "1")  # (2, 3, 4, 4, 4) maps, then dropped
    if device != "cpu":
        torch.cuda.synchronize()
    return device


def dask_setup(worker) -> None:  # noqa: ARG001  (Dask passes the worker)
    """Dask's preload hook, run as the worker starts: the warm-up, and warnings as one line, as the client shows
    them (:func:`tomocam.errors.warning_line`)."""
    from tomocam.errors import warning_line

    warnings.formatwarning = warning_line
    warnings.filterwarnings("ignore", message=CUBLAS_CONTEXT_WARNING)
    try:
        logger.debug("worker warmed up on %s", warm_up())
    except Exception:  # the first task meets the same problem and reports it
        logger.warning("worker warm-up failed", exc_info=True)


if __name__ == "__main__":  # the arguments for ``dask worker`` (scripts/slurm/dask-worker.sh), one per line
    for name in worker_preloads():
        print("--preload", name, sep="\n")
