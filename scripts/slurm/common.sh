# shellcheck shell=bash
# Shared by scripts/slurm/*.sbatch (sourced, not run). Two halves:
#
# On a login node (the script run as a program, not by SLURM): tomocam_submit resolves the site settings
# (configs/slurm.yaml, overridden by TOMOCAM_<KEY> variables; see `python3 -m tomocam.pipeline.slurm env`),
# exports them so that the job sees the same values, and submits the script with the matching sbatch options.
#
# Inside the job: tomocam_job_setup activates the environment and installs the signal traps;
# tomocam_start_cluster starts a Dask scheduler (one srun task, per-job scheduler file on the shared filesystem)
# and one Dask worker per SLURM task (dask-worker.sh: one GPU each, or CPU workers); tomocam_run_client runs
# the client in the background so that the traps fire while it runs; tomocam_explain_one puts these together.
#
# Signals: SIGUSR1 (sent by `#SBATCH --signal=B:USR1@120` 120 s before the walltime) stops the client and requeues
# the job, at most TOMOCAM_REQUEUE_LIMIT times; the rerun resumes from the finished blocks. SIGTERM (preemption or
# scancel) stops the client; a preempted job with --requeue is requeued by SLURM and resumes the same way.
# The scheduler file is removed and the srun steps are stopped on exit, whatever the reason.

tomocam_python=${TOMOCAM_PYTHON:-python3}

# --- login node ------------------------------------------------------------------------------------------------

# tomocam_submit SCRIPT KIND ARRAY_SIZE [ARGS...]: submit SCRIPT (kind explain, explain-array, explain-multinode or
# train; ARRAY_SIZE is the number of array tasks, or "" for other kinds) with the configured sbatch options.
# Extra sbatch options go in TOMOCAM_SBATCH_EXTRA (or sbatch_extra in the settings file).
tomocam_submit() {
    local script=$1 kind=$2 array_size=$3 settings
    shift 3
    local size_args=()
    if [[ -n $array_size ]]; then
        size_args=(--array-size "$array_size")
    fi
    settings=$("$tomocam_python" -m tomocam.pipeline.slurm env) || exit 1
    eval "$settings"
    # The job inherits these variables (sbatch's default --export=ALL) and need not resolve them again.
    export TOMOCAM_SETTINGS_RESOLVED=1
    local options=()
    mapfile -t options < <("$tomocam_python" -m tomocam.pipeline.slurm sbatch-options "$kind" "${size_args[@]}")
    if [[ ${#options[@]} -eq 0 ]]; then
        echo "tomocam: could not build the sbatch options of '$kind'" >&2
        exit 1
    fi
    TOMOCAM_SLURM_DIR=$(cd "$(dirname "$script")" && pwd)
    export TOMOCAM_SLURM_DIR
    exec sbatch "${options[@]}" "$script" "$@"
}

# --- inside the job --------------------------------------------------------------------------------------------

tomocam_client_pid=""
tomocam_step_pids=()
tomocam_scheduler_file=""
tomocam_stop_reason=""

tomocam_log() {
    echo "[tomocam $(date +%H:%M:%S) job ${SLURM_JOB_ID:-?}] $*" >&2
}

# tomocam_job_setup: activate the environment, read the settings, install the traps, print a header.
tomocam_job_setup() {
    if [[ -n ${TOMOCAM_ACTIVATE:-} ]]; then
        set +u  # activation scripts (module load, conda) often read unset variables
        eval "$TOMOCAM_ACTIVATE"
        set -u
    fi
    if [[ -z ${TOMOCAM_SETTINGS_RESOLVED:-} ]]; then  # submitted with plain sbatch
        local settings
        settings=$("$tomocam_python" -m tomocam.pipeline.slurm env) || exit 1
        eval "$settings"
    fi
    trap tomocam_on_walltime USR1
    trap tomocam_on_term TERM
    trap tomocam_cleanup EXIT
    tomocam_log "start on $(hostname) (restart ${SLURM_RESTART_COUNT:-0}, ${SLURM_NTASKS:-1} task(s)," \
        "${SLURM_JOB_NUM_NODES:-1} node(s), GPUs per node: $TOMOCAM_GPUS_PER_NODE)"
}

tomocam_on_walltime() {
    tomocam_log "walltime near (SIGUSR1): stopping the client to requeue"
    tomocam_stop_reason=walltime
    tomocam_stop_client
}

tomocam_on_term() {
    tomocam_log "SIGTERM (preemption or scancel): stopping; finished blocks are kept for --resume"
    tomocam_stop_reason=term
    tomocam_stop_client
}

tomocam_stop_client() {
    if [[ -n $tomocam_client_pid ]]; then
        kill -TERM "$tomocam_client_pid" 2>/dev/null || true
    fi
}

tomocam_cleanup() {
    local pid
    for pid in "${tomocam_step_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${tomocam_step_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $tomocam_scheduler_file ]]; then
        rm -f "$tomocam_scheduler_file"
    fi
}

# tomocam_seconds_left: seconds until this job's walltime, or nothing when it has none.
tomocam_seconds_left() {
    local left days=0 h=0 m=0 s=0
    left=$(squeue -h -j "$SLURM_JOB_ID" -o %L 2>/dev/null || true)
    if [[ $left =~ ^(([0-9]+)-)?(([0-9]+):)?([0-9]+):([0-9]+)$ ]]; then
        days=${BASH_REMATCH[2]:-0}
        h=${BASH_REMATCH[4]:-0}
        m=${BASH_REMATCH[5]}
        s=${BASH_REMATCH[6]}
        echo $((10#$days * 86400 + 10#$h * 3600 + 10#$m * 60 + 10#$s))
    fi
}

# tomocam_start_cluster: one Dask scheduler and one Dask worker per SLURM task of the job, across its nodes;
# sets tomocam_scheduler_file and returns once every worker has joined.
tomocam_start_cluster() {
    local shared_dir=${TOMOCAM_SHARED_DIR/#\~/$HOME}
    mkdir -p "$shared_dir"
    tomocam_scheduler_file="$shared_dir/scheduler-${SLURM_JOB_ID}.json"
    rm -f "$tomocam_scheduler_file"

    local lifetime="" left
    left=$(tomocam_seconds_left)
    if [[ -n $left ]]; then
        lifetime=$((left - TOMOCAM_RETIRE_MARGIN - TOMOCAM_LIFETIME_STAGGER))
        if ((lifetime < 60)); then
            lifetime=60
        fi
    fi
    export TOMOCAM_WORKER_LIFETIME=$lifetime

    # --overlap: the scheduler, the workers and the client (this batch step) share the job's resources.
    srun --overlap --nodes=1 --ntasks=1 --cpus-per-task=1 --kill-on-bad-exit=0 \
        dask scheduler --scheduler-file "$tomocam_scheduler_file" --port 0 --dashboard-address :0 &
    tomocam_step_pids+=($!)
    local waited=0
    until [[ -s $tomocam_scheduler_file ]]; do
        if ! kill -0 "${tomocam_step_pids[0]}" 2>/dev/null || ((waited >= 1200)); then
            tomocam_log "the Dask scheduler did not start (no $tomocam_scheduler_file)"
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done

    local workers=${SLURM_NTASKS:-1}
    srun --overlap --ntasks="$workers" --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" --kill-on-bad-exit=0 \
        bash "$TOMOCAM_SLURM_DIR/dask-worker.sh" "$tomocam_scheduler_file" &
    tomocam_step_pids+=($!)
    tomocam_log "scheduler file $tomocam_scheduler_file;" \
        "waiting for $workers worker(s) (lifetime ${lifetime:-unlimited} s)"
    "$tomocam_python" - "$tomocam_scheduler_file" "$workers" <<'PY' || exit 1
import sys
from distributed import Client
with Client(scheduler_file=sys.argv[1], timeout="120s") as client:
    try:
        client.wait_for_workers(int(sys.argv[2]), timeout=600)
    except TimeoutError:
        sys.exit(f"tomocam: only {len(client.scheduler_info()['workers'])} of {sys.argv[2]} Dask workers joined")
PY
    tomocam_log "all $workers worker(s) joined"
}

# tomocam_run_client COMMAND...: run COMMAND in the background and wait for it, so that SIGUSR1 and SIGTERM are
# handled while it runs. Returns its exit status; after SIGUSR1 requeues the job (within the limit) and exits.
tomocam_run_client() {
    "$@" &
    tomocam_client_pid=$!
    while kill -0 "$tomocam_client_pid" 2>/dev/null; do
        wait "$tomocam_client_pid" || true
    done
    local status=0
    wait "$tomocam_client_pid" || status=$?
    tomocam_client_pid=""
    if [[ $tomocam_stop_reason == walltime ]]; then
        if ((${SLURM_RESTART_COUNT:-0} < TOMOCAM_REQUEUE_LIMIT)); then
            tomocam_log "requeueing job $SLURM_JOB_ID; the rerun resumes from the finished blocks"
            scontrol requeue "$SLURM_JOB_ID"
        else
            tomocam_log "not requeueing: restarted ${SLURM_RESTART_COUNT:-0} times already" \
                "(limit $TOMOCAM_REQUEUE_LIMIT)"
        fi
        exit 0
    fi
    if [[ $tomocam_stop_reason == term ]]; then
        exit 143
    fi
    return "$status"
}

# tomocam_explain_one TOMOGRAM OUTPUT [EXPLAIN OPTIONS...]: explain one tomogram on this job's Dask cluster.
# The output is resumed when it exists (a rerun after requeue, preemption or cancellation).
tomocam_explain_one() {
    local tomogram=$1 output=$2
    shift 2
    local resume=()
    if [[ -e $output ]]; then
        resume=(--resume)
        tomocam_log "$output exists: resuming"
    fi
    tomocam_start_cluster
    local device=cpu
    if ((TOMOCAM_GPUS_PER_NODE > 0)); then
        device=cuda
    fi
    tomocam_run_client tomocam explain "$tomogram" --scheduler-file "$tomocam_scheduler_file" \
        --device "$device" -o "$output" "${resume[@]}" "$@"
}

# --- shared by the scripts' argument handling ----------------------------------------------------------------

# tomocam_usage SCRIPT [MESSAGE]: print MESSAGE and the header comment of SCRIPT (its documentation), exit 2.
tomocam_usage() {
    if [[ -n ${2:-} ]]; then
        echo "tomocam: $2" >&2
    fi
    sed -n '2,/^[^#]/{/^#SBATCH/d;/^#/s/^# \{0,1\}//p}' "$1" >&2
    exit 2
}
