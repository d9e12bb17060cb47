#!/usr/bin/env bash
# One Dask worker for one SLURM task; common.sh runs it with srun, one task per GPU (or per CPU worker).
#
# Usage (inside a job step): dask-worker.sh SCHEDULER_FILE
# Reads TOMOCAM_GPUS_PER_NODE, TOMOCAM_WORKER_MEMORY, TOMOCAM_LOCAL_DIR, TOMOCAM_WORKER_LIFETIME,
# TOMOCAM_LIFETIME_STAGGER (exported by the batch script) and SLURM's SLURM_LOCALID, SLURM_PROCID,
# SLURM_CPUS_PER_TASK, CUDA_VISIBLE_DEVICES.
#
# GPU workers see exactly one GPU: when SLURM gives the task all of the node's GPUs, the worker keeps the one at
# position SLURM_LOCALID, so the code inside always uses cuda:0. They advertise the Dask resource GPU=1, which the
# GPU tasks of `tomocam explain` require: one GPU task at a time per GPU, CPU tasks on the other threads.
# A worker that cannot start, or exits with an error, leaves SCHEDULER_FILE.failed-<task> saying why, so that the
# batch step ends the job at once instead of waiting for it.
set -euo pipefail

scheduler_file=$1
gpus=${TOMOCAM_GPUS_PER_NODE:-0}
extra=()

# fail MESSAGE: say why on stderr and in a note beside the scheduler file (the batch step reads it), exit 1.
fail() {
    echo "tomocam: $*" >&2
    echo "task ${SLURM_PROCID:-?} on $(hostname): $*" >"$scheduler_file.failed-${SLURM_PROCID:-0}"
    exit 1
}

if ((gpus > 0)); then
    devices=()
    if [[ -n ${CUDA_VISIBLE_DEVICES:-} && ${CUDA_VISIBLE_DEVICES} != NoDevFiles ]]; then
        IFS=, read -r -a devices <<<"$CUDA_VISIBLE_DEVICES"
    fi
    if ((${#devices[@]} == 0)); then
        fail "TOMOCAM_GPUS_PER_NODE=$gpus but this task sees no GPU;" \
            "submit with --gpus-per-node=$gpus, or set TOMOCAM_GPUS_PER_NODE=0 for CPU workers"
    fi
    if ((${#devices[@]} > 1)); then
        export CUDA_VISIBLE_DEVICES=${devices[$((${SLURM_LOCALID:-0} % ${#devices[@]}))]}
    fi
    extra+=(--resources GPU=1)
fi
if [[ -n ${TOMOCAM_WORKER_LIFETIME:-} ]]; then
    extra+=(--lifetime "${TOMOCAM_WORKER_LIFETIME}s" --lifetime-stagger "${TOMOCAM_LIFETIME_STAGGER:-0}s")
fi

# Dask's configured preloads (e.g. a module registering your architectures) and tomocam's warm-up of the worker
mapfile -t preloads < <(python -m tomocam.deploy.warmup)
extra+=("${preloads[@]}")
threads=${SLURM_CPUS_PER_TASK:-1}
export OMP_NUM_THREADS=$threads
local_dir=${TOMOCAM_LOCAL_DIR:-${TMPDIR:-/tmp}}
status=0
dask worker --scheduler-file "$scheduler_file" --nworkers 1 --nthreads "$threads" \
    --memory-limit "${TOMOCAM_WORKER_MEMORY:-auto}" --local-directory "$local_dir" \
    --name "tomocam-${SLURM_JOB_ID:-0}-${SLURM_PROCID:-0}" --death-timeout 120 --no-dashboard "${extra[@]}" ||
    status=$?
if ((status != 0)); then
    fail "the Dask worker exited with status $status (its messages are above)"
fi
