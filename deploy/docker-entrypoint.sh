#!/usr/bin/env bash
# The image's entrypoint, run by tini: starts attnserve with the image's defaults and then
# every argument of `docker run IMAGE ...`. Abseil flags take the last value given, so any
# of those flags (--model_dir, --threads, ...) overrides the default set here.
#   ATTNSERVE_MODEL_DIR  model directory (image default: the bundled dates model)
#   ATTNSERVE_THREADS    OpenMP threads; unset = the container's CPU quota (below)
set -euo pipefail

# Whole CPUs of the CFS quota (cgroup v2 cpu.max, else v1), rounded down, at least 1;
# nothing when there is no quota. The server's --threads=0 means every core of the host,
# and an OpenMP team larger than the quota is throttled in the middle of its barriers.
quota_cpus() {
  local quota="max" period=100000
  if [[ -r /sys/fs/cgroup/cpu.max ]]; then
    read -r quota period </sys/fs/cgroup/cpu.max
  elif [[ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]]; then
    quota=$(</sys/fs/cgroup/cpu/cpu.cfs_quota_us)
    period=$(</sys/fs/cgroup/cpu/cpu.cfs_period_us)
  fi
  if [[ $quota =~ ^[0-9]+$ ]] && ((period > 0)); then
    echo $((quota / period > 0 ? quota / period : 1))
  fi
}

threads=${ATTNSERVE_THREADS:-${OMP_NUM_THREADS:-}}
if [[ -z $threads ]]; then
  threads=$(nproc) # the CPUs this process may run on (cpuset, affinity)
  quota=$(quota_cpus)
  if [[ -n $quota ]] && ((quota < threads)); then threads=$quota; fi
fi
# The same count for any OpenMP team that --threads does not size (libgomp's default).
export OMP_NUM_THREADS=$threads

exec /usr/local/bin/attnserve --model_dir="${ATTNSERVE_MODEL_DIR:?}" --threads="$threads" "$@"
