#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the Slurm tests (as root; Debian's slurm-wlm and munge).
# Installs the packages when missing, writes /etc/slurm/slurm.conf (the node: this host, its CPUs and memory, one
# pretend GPU as a generic resource so that a cluster's `--gres=gpu:1` line is accepted), starts munged, slurmctld and
# slurmd, and waits until the node is idle. Idempotent: a running cluster is left alone. Prints `slurm: ready` or
# fails. Without root there is nothing to do here: ask the cluster's admins, the tests skip.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    echo "slurm: not root, no local cluster" >&2
    exit 1
fi
if sinfo -h -o %T 2>/dev/null | grep -q idle; then
    echo "slurm: ready (already running)"
    exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi
host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
chown slurm: /var/spool/slurmctld /var/log/slurm
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=aiida-mliap
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
MinJobAge=300
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$memory Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
echo "Name=gpu Count=1 File=/dev/null" > /etc/slurm/gres.conf
chown munge: /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- munged
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -q idle; then
        echo "slurm: ready ($host, $cpus CPUs, ${memory} MB)"
        exit 0
    fi
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "slurm: the node did not become idle" >&2
sinfo >&2 || true
tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
