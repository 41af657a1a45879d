#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for development and CI (Debian's slurmd, slurmctld and munge).
#
#   tools/slurm_local.sh install   apt-get install the daemons and the client commands (root)
#   tools/slurm_local.sh start     write /etc/slurm/slurm.conf for this host and start munged, slurmctld, slurmd
#   tools/slurm_local.sh stop      stop the daemons this script started
#   tools/slurm_local.sh status    sinfo, or exit 1 when no cluster answers
#
# Runs as root without systemd or cgroups (a container): ProctrackType=proctrack/linuxproc, TaskPlugin=task/none,
# SelectType=select/cons_tres with one node holding this machine's CPUs and memory, no accounting daemon
# (job states come from squeue/scontrol; finished jobs are kept by slurmctld for MinJobAge seconds).
set -euo pipefail

CONF_DIR=${SLURM_LOCAL_CONF_DIR:-/etc/slurm}
STATE=${SLURM_LOCAL_STATE:-/var/lib/clinagent-slurm}
PARTITION=${SLURM_LOCAL_PARTITION:-debug}

install() {
  if command -v slurmctld >/dev/null 2>&1 && command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurmd slurmctld slurm-client munge >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmd slurmctld slurm-client munge >/dev/null
  }
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  mkdir -p "$CONF_DIR" "$STATE"/{ctld,d,log}
  cat > "$CONF_DIR/slurm.conf" <<CONF
# written by tools/slurm_local.sh: a single-node development cluster
ClusterName=clinagent
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
# finished jobs stay visible to scontrol for 15 minutes (no accounting daemon here)
MinJobAge=900
KillWait=5
OverTimeLimit=0
InactiveLimit=0
SchedulerParameters=sched_interval=2,bf_interval=2
MessageTimeout=20
DefMemPerCPU=1024
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
}

start() {
  install
  write_conf
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  fi
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force
  [ -f "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null || slurmctld -c -f "$CONF_DIR/slurm.conf"
  [ -f "$STATE/slurmd.pid" ] && kill -0 "$(cat "$STATE/slurmd.pid")" 2>/dev/null || slurmd -f "$CONF_DIR/slurm.conf"
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      sinfo
      return 0
    fi
    sleep 1
  done
  echo "slurm_local: the node did not come up; see $STATE/log/" >&2
  tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
  return 1
}

stop() {
  for name in slurmd slurmctld; do
    if [ -f "$STATE/$name.pid" ]; then
      kill "$(cat "$STATE/$name.pid")" 2>/dev/null || true
      rm -f "$STATE/$name.pid"
    fi
  done
}

status() { sinfo -h >/dev/null 2>&1 && sinfo; }

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
