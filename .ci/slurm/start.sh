#!/usr/bin/env bash
# Start a one-node SLURM on localhost for CI: munged, slurmctld and slurmd, CPU only.
#
# What it does, in order: installs slurm-wlm, munge and shellcheck from Debian's packages (install.sh), writes
# /etc/slurm/slurm.conf for one node called "localhost", starts munged, slurmctld and slurmd (restarting a daemon
# whose configuration changed), and waits until `sinfo` shows the node idle. Idempotent: running it again when the
# cluster is up and configured does nothing but the final check. Needs root.
#
# The node advertises TOMOCAM_CI_SLURM_CPUS (default 4) CPUs whatever the machine has (SlurmdParameters=
# config_overrides) so that a job can run a scheduler, workers and a client side by side on a 2-core machine.
# It has no GPUs: jobs are submitted with TOMOCAM_GPUS_PER_NODE=0, which scripts/slurm/*.sbatch honour.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cpus=${TOMOCAM_CI_SLURM_CPUS:-4}
conf=/etc/slurm/slurm.conf
log_dir=/var/log/slurm
spool=/var/spool/slurm

bash "$here/install.sh"
mkdir -p /etc/slurm "$log_dir" "$spool/ctld" "$spool/d" /run/munge

new_conf=$(mktemp)
trap 'rm -f "$new_conf"' EXIT
cat > "$new_conf" <<CONF
# Written by .ci/slurm/start.sh: a one-node, CPU-only SLURM for tomocam's CI. Do not edit by hand.
ClusterName=tomocam-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$spool/ctld
SlurmdSpoolDir=$spool/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
# Containers have no usable cgroup hierarchy: track processes by parentage, bind no tasks, gather no accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
# Seconds between SIGTERM and SIGKILL when a job is cancelled: long enough for the scripts' TERM trap.
KillWait=15
MinJobAge=600
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

conf_changed=0
if ! cmp -s "$new_conf" "$conf"; then
    cp "$new_conf" "$conf"
    conf_changed=1
fi

alive() {  # alive PIDFILE: true when the process named in PIDFILE runs
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop() {  # stop PIDFILE: end that daemon and wait for it to go
    local pid
    if alive "$1"; then
        pid=$(cat "$1")
        kill "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

# munge: one key shared by controller and node (both are this machine).
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --force
    chown munge:munge /etc/munge/munge.key
    chmod 600 /etc/munge/munge.key
fi
chown munge:munge /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
fi

if [[ $conf_changed -eq 1 ]]; then
    stop /run/slurmd.pid
    stop /run/slurmctld.pid
fi
if ! alive /run/slurmctld.pid; then
    slurmctld
fi
if ! alive /run/slurmd.pid; then
    slurmd -N localhost
fi

# Wait for the node to register and be schedulable.
for _ in $(seq 120); do
    state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
    case $state in
        idle|mixed|allocated) echo "start.sh: SLURM is up: node localhost is $state"; exit 0 ;;
        down*|drain*|fail*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
done
echo "start.sh: SLURM did not come up within 60 s; node state: '${state:-none}'" >&2
tail -n 20 "$log_dir/slurmctld.log" "$log_dir/slurmd.log" >&2 || true
exit 1
