#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for tests and CI: local_cluster.sh start|stop DIR
#
# start: writes DIR/slurm.conf (this host as the only node, 4 CPUs, state and logs under DIR), starts munged
#        when no munge daemon answers, then slurmctld and slurmd, and waits until the node is idle.
# stop:  cancels the cluster's jobs, then stops slurmctld and slurmd (and munged, if start started it).
# Clients need SLURM_CONF=DIR/slurm.conf. Needs root (slurmd starts jobs as their users) and Debian's
# slurm-wlm and munge. SLURMCTLD_PORT and SLURMD_PORT (default 6917, 6918) move the cluster off others' ports.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
export SLURM_CONF=$dir/slurm.conf

write_conf() {
    local host
    host=$(hostname)
    mkdir -p "$dir/state" "$dir/spool"
    cat >"$SLURM_CONF" <<EOF
ClusterName=xsearch-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${SLURMCTLD_PORT:-6917}
SlurmdPort=${SLURMD_PORT:-6918}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
KillWait=30
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if munge -n </dev/null | unmunge >/dev/null 2>&1; then
        return
    fi
    mkdir -p /run/munge
    munged --force
    cp /run/munge/munged.pid "$dir/munged.pid"  # started here: stop stops it
}

wait_idle() {
    local state
    for _ in $(seq 120); do
        state=$(sinfo --noheader --format=%T 2>/dev/null || true)
        if [ "$state" = idle ]; then
            return
        fi
        sleep 0.5
    done
    echo "$0: the node is not idle after 60 s (state: ${state:-none}); the daemons' logs end with:" >&2
    tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
    exit 1
}

stop_pid_file() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
    fi
    rm -f "$file"
}

case $action in
    start)
        [ "$(id -u)" = 0 ] || { echo "$0: must run as root (slurmd starts the jobs as their users)" >&2; exit 1; }
        write_conf
        start_munge
        slurmctld -f "$SLURM_CONF"
        slurmd -f "$SLURM_CONF"
        wait_idle
        ;;
    stop)
        if [ -f "$dir/slurmctld.pid" ]; then  # jobs outlive slurmd (slurmstepd runs them): cancel them first
            squeue --noheader --format=%A 2>/dev/null | xargs --no-run-if-empty scancel --quiet || true
            for _ in $(seq 60); do
                [ -z "$(squeue --noheader 2>/dev/null)" ] && break
                sleep 0.5
            done
        fi
        stop_pid_file "$dir/slurmd.pid"
        stop_pid_file "$dir/slurmctld.pid"
        stop_pid_file "$dir/munged.pid"
        ;;
    *) usage ;;
esac
