# shellcheck shell=bash
# Shared by scripts/slurm/*.sbatch (sourced, not run). Two halves:
#
# On a login node (the script run as a program, not by SLURM): tomocam_submit resolves the site settings
# (packaged defaults < $TOMOCAM_SLURM_CONFIG < TOMOCAM_<KEY> variables; `tomocam slurm settings` prints them),
# exports them so that the job sees the same values, and submits the script with the matching sbatch options.
#
# Inside the job: tomocam_job_setup activates the environment and installs the signal traps;
# tomocam_start_cluster starts a Dask scheduler (one srun task, per-job scheduler file on the shared filesystem)
# and one Dask worker per SLURM task (dask-worker.sh: one GPU each, or CPU workers); tomocam_run_client runs
# the client in the background so that the traps fire while it runs; tomocam_explain_one puts these together.
# Dask's INFO messages are off (DASK_LOGGING__DISTRIBUTED=warning); each job logs to the --output file of its
# script's #SBATCH header, in the folder it was submitted from.
#
# Signals: SIGUSR1 (sent by `#SBATCH --signal=B:USR1@120` 120 s before the walltime) stops the client and requeues
# the job, at most TOMOCAM_REQUEUE_LIMIT times; the rerun resumes from the finished blocks. SIGTERM (preemption or
# scancel) stops the client; a preempted job with --requeue is requeued by SLURM and resumes the same way.
# A Dask worker that fails at start ends the job at once with its reason and exit status 1 (dask-worker.sh leaves
# a note beside the scheduler file); when every worker has ended and one failed, the client is stopped too.
# On success the scheduler and workers are shut down through Dask, so their job steps end cleanly; the scheduler
# file is removed on exit, whatever the reason.

tomocam_python=${TOMOCAM_PYTHON:-python3}
export DASK_LOGGING__DISTRIBUTED=${DASK_LOGGING__DISTRIBUTED:-warning}

# --- login node ------------------------------------------------------------------------------------------------

# tomocam_submit SCRIPT KIND ARRAY_SIZE [ARGS...]: submit SCRIPT (kind explain, explain-array, explain-multinode or
# train; ARRAY_SIZE is the number of array tasks, or "" for other kinds) with the configured sbatch options.
# Extra sbatch options go in TOMOCAM_SBATCH_EXTRA (or sbatch_extra in the settings file).
# tomocam_settings: resolve the site settings into TOMOCAM_<KEY> variables (once; the job inherits them through
# sbatch's default --export=ALL and need not resolve them again).
tomocam_settings() {
    if [[ -z ${TOMOCAM_SETTINGS_RESOLVED:-} ]]; then
        local settings
        settings=$(tomocam slurm env) || exit 1
        eval "$settings"
        export TOMOCAM_SETTINGS_RESOLVED=1
    fi
}

tomocam_submit() {
    local script=$1 kind=$2 array_size=$3 settings
    shift 3
    local size_args=()
    if [[ -n $array_size ]]; then
        size_args=(--array-size "$array_size")
    fi
    tomocam_settings
    local options=()
    mapfile -t options < <(tomocam slurm sbatch-options "$kind" "${size_args[@]}")
    if [[ ${#options[@]} -eq 0 ]]; then
        echo "tomocam: could not build the sbatch options of '$kind'" >&2
        exit 1
    fi
    TOMOCAM_SLURM_DIR=$(cd "$(dirname "$script")" && pwd)
    export TOMOCAM_SLURM_DIR
    exec sbatch "${options[@]}" "$script" "$@"
}

# tomocam_template SCRIPT KIND [NOTE]: print a batch script whose #SBATCH header holds SCRIPT's own lines and the
# resources of the settings (tomocam slurm sbatch-options KIND), for a user to edit and submit with plain sbatch;
# its body runs SCRIPT's job part. NOTE, if given, is printed as more comment lines (how to submit it). Exits.
tomocam_template() {
    local script=$1 kind=$2 note=${3:-} name options=()
    name=$(basename "$script")
    tomocam_settings
    mapfile -t options < <(tomocam slurm sbatch-options "$kind")
    if [[ ${#options[@]} -eq 0 ]]; then
        echo "tomocam: could not build the sbatch options of '$kind'" >&2
        exit 1
    fi
    echo "#!/usr/bin/env bash"
    grep '^#SBATCH' "$script"
    printf '#SBATCH %s\n' "${options[@]}"
    cat <<EOF
# Written by \`$name --template\` from the SLURM settings. Edit the #SBATCH lines above (a later line wins over an
# earlier one), then submit with plain sbatch:   sbatch THIS_FILE [the arguments of $name]
# One Dask worker runs per task: keep --ntasks-per-node equal to the GPUs per node and TOMOCAM_GPUS_PER_NODE below
# equal to them too (0, and no --gpus option, for CPU-only jobs). The other settings are read when the job starts.
EOF
    if [[ -n $note ]]; then
        echo "$note" | fold -s -w 114 | sed 's/^/# /; s/ *$//'
    fi
    cat <<EOF
export TOMOCAM_GPUS_PER_NODE=$TOMOCAM_GPUS_PER_NODE
export TOMOCAM_SLURM_DIR=$(printf %q "$TOMOCAM_SLURM_DIR")
export TOMOCAM_IN_JOB=1
exec bash "\$TOMOCAM_SLURM_DIR/$name" "\$@"
EOF
    exit 0
}

# --- inside the job --------------------------------------------------------------------------------------------

tomocam_client_pid=""
tomocam_step_pids=()
tomocam_scheduler_file=""
tomocam_stop_reason=""
tomocam_watchdog_pid=""

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
    tomocam_settings  # a no-op unless submitted with plain sbatch
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
    if [[ -n $tomocam_watchdog_pid ]]; then
        kill "$tomocam_watchdog_pid" 2>/dev/null || true
    fi
    if [[ -s $tomocam_scheduler_file ]]; then  # ask Dask to stop its scheduler and workers: their steps end cleanly
        timeout 30 "$tomocam_python" -c 'import sys; from distributed import Client
with Client(scheduler_file=sys.argv[1], timeout="10s") as c: c.shutdown()' "$tomocam_scheduler_file" \
            >/dev/null 2>&1 || true
        for _ in $(seq 100); do
            tomocam_steps_alive || break
            sleep 0.2
        done
    fi
    for pid in "${tomocam_step_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${tomocam_step_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $tomocam_scheduler_file ]]; then
        rm -f "$tomocam_scheduler_file" "$tomocam_scheduler_file".failed-*
    fi
}

# tomocam_steps_alive: true while any srun step of this job script (scheduler, workers) runs.
tomocam_steps_alive() {
    local pid
    for pid in "${tomocam_step_pids[@]}"; do
        kill -0 "$pid" 2>/dev/null && return 0
    done
    return 1
}

# tomocam_worker_failures: the notes dask-worker.sh left for workers that failed, one per line (none: empty).
tomocam_worker_failures() {
    cat "$tomocam_scheduler_file".failed-* 2>/dev/null || true
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
    # Wait until every worker has joined; stop at once when one fails (its note) or the worker step has ended.
    "$tomocam_python" - "$tomocam_scheduler_file" "$workers" "${tomocam_step_pids[1]}" <<'PY' || exit 1
import glob, os, sys, time
from distributed import Client
scheduler_file, n, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with Client(scheduler_file=scheduler_file, timeout="120s") as client:
    deadline = time.monotonic() + 600
    while (joined := len(client.scheduler_info(n_workers=-1)["workers"])) < n:
        failed = [open(f).read().strip() for f in sorted(glob.glob(scheduler_file + ".failed-*"))]
        if failed:
            sys.exit("tomocam: a Dask worker failed at start: " + " | ".join(failed))
        try:
            os.kill(step, 0)
        except ProcessLookupError:
            sys.exit(f"tomocam: the Dask workers' job step ended after {joined} of {n} joined; see the lines above")
        if time.monotonic() > deadline:
            sys.exit(f"tomocam: only {joined} of {n} Dask workers joined within 600 s")
        time.sleep(0.5)
    names = sorted(w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values())
    print(f"[tomocam] workers: {', '.join(map(str, names))}", file=sys.stderr)
PY
    tomocam_log "all $workers worker(s) joined"
}

# tomocam_run_client COMMAND...: run COMMAND in the background and wait for it, so that SIGUSR1 and SIGTERM are
# handled while it runs. Returns its exit status; after SIGUSR1 requeues the job (within the limit) and exits.
tomocam_run_client() {
    "$@" &
    tomocam_client_pid=$!
    if ((${#tomocam_step_pids[@]} > 1)); then
        tomocam_watch_workers &
        tomocam_watchdog_pid=$!
    fi
    while kill -0 "$tomocam_client_pid" 2>/dev/null; do
        wait "$tomocam_client_pid" || true
    done
    local status=0
    wait "$tomocam_client_pid" || status=$?
    tomocam_client_pid=""
    if [[ -n $tomocam_watchdog_pid ]]; then
        kill "$tomocam_watchdog_pid" 2>/dev/null || true
        wait "$tomocam_watchdog_pid" 2>/dev/null || true
        tomocam_watchdog_pid=""
    fi
    if [[ -z $tomocam_stop_reason && $status -ne 0 && -n $(tomocam_worker_failures) ]]; then
        tomocam_log "stopped: the Dask workers ended: $(tomocam_worker_failures | tr '\n' ' ')"
        return 1
    fi
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

# tomocam_watch_workers: (in the background while the client runs) once the workers' job step has ended with a
# failed worker among them, i.e. no Dask worker is left, stop the client, which would otherwise wait for workers
# until the walltime. Workers that retire before the walltime (--lifetime) end without a note: the job then
# waits for SIGUSR1 and requeues itself.
tomocam_watch_workers() {
    local step=${tomocam_step_pids[1]}
    while kill -0 "$step" 2>/dev/null || [[ -z $(tomocam_worker_failures) ]]; do
        sleep 2
    done
    tomocam_log "every Dask worker has ended; stopping the client"
    kill -TERM "$tomocam_client_pid" 2>/dev/null || true
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
