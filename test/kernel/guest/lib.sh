# Sourced by the guest scripts that run a real dockerd (`. "$GUEST_LIB"`; vmrun.sh sets GUEST_LIB to this file, which
# the guest sees at the same path through the read-only host root). Bash, with `set -Eeuo pipefail` set by the caller.
#
# The engine is bounded: under TCG on a busy host dockerd/containerd have hung (a CI run sat 15 minutes in one guest
# with no output). Every `docker` command and every dockerd stop here takes at most STEP_TIMEOUT seconds (default 300);
# one that overruns says so on stderr and the script exits GUEST_ENGINE_HANG (124), the code runInGuest's
# retryEngineHang boots a fresh guest for (test/kernel/harness.ts). Any other failure keeps its own code.
# "@@ step <uptime> <what>" lines mark progress, so a run that stops shows where.

STEP_TIMEOUT=${STEP_TIMEOUT:-300}
GUEST_ENGINE_HANG=124

step() { echo "@@ step $(cut -d' ' -f1 /proc/uptime) $*"; }

# bounded CMD...: CMD, killed after STEP_TIMEOUT s (status 124, named on stderr)
bounded() {
  local rc=0
  timeout -k 10 "$STEP_TIMEOUT" "$@" || rc=$?
  [ $rc = 124 ] && echo "guest: timed out after ${STEP_TIMEOUT}s: $*" >&2
  return $rc
}

# every docker CLI call in the scripts is bounded (DOCKER_HOST names the daemon when it is not the default socket);
# `timeout` runs a file, so the CLI is named by its path
DOCKER_CLI=$(type -P docker) || { echo "guest: no docker CLI on PATH ($PATH)" >&2; exit 2; }
docker() { bounded "$DOCKER_CLI" "$@"; }

# dockerd_start LOG WAIT ATTEMPTS DOCKERD-ARGS...: starts dockerd in the background (DPID), and waits up to WAIT s for
# `docker info` to answer. A daemon that died or never answered is stopped and started again, ATTEMPTS times in all
# (dockerd sometimes gives up waiting for its containerd on a busy TCG host). Returns 1 when none answered: the
# caller decides (it may print its own diagnosis); the log keeps every attempt.
dockerd_start() {
  local log=$1 wait=$2 attempts=$3 attempt i
  shift 3
  for attempt in $(seq "$attempts"); do
    dockerd "$@" >> "$log" 2>&1 < /dev/null &
    DPID=$!
    for i in $(seq "$wait"); do
      docker info > /dev/null 2>&1 && return 0
      kill -0 $DPID 2>/dev/null || break
      sleep 1
    done
    docker info > /dev/null 2>&1 && return 0
    echo "@@ dockerd-retry $attempt $log"
    dockerd_stop || true
  done
  return 1
}

# dockerd_stop: SIGTERM to DPID, then up to STEP_TIMEOUT s for it to exit; its exit status in DRC. If it is still
# alive then, SIGKILL and status 1 (never an unbounded wait).
dockerd_stop() {
  local i
  DRC=0
  kill -TERM "$DPID" 2>/dev/null || true
  for i in $(seq "$STEP_TIMEOUT"); do kill -0 "$DPID" 2>/dev/null || break; sleep 1; done
  if kill -0 "$DPID" 2>/dev/null; then
    echo "guest: dockerd (pid $DPID) still alive ${STEP_TIMEOUT}s after SIGTERM; killed" >&2
    kill -KILL "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    return 1
  fi
  wait "$DPID" 2>/dev/null || DRC=$?
}

# dockerd_stopped_or_hang: dockerd_stop, and exit 124 when dockerd had to be killed
dockerd_stopped_or_hang() { dockerd_stop || exit $GUEST_ENGINE_HANG; }

# lvm_guest_config: LVM without udev, lvmetad, dmeventd or a devices file; loop devices only; its backups in /run
# (/etc/lvm/archive is the host's, seen read-only through 9p)
lvm_guest_config() {
  mkdir -p /etc/lvm /run/lock/lvm /run/lvm /run/lvm-meta/backup /run/lvm-meta/archive
  cat > /etc/lvm/lvm.conf <<'LVM'
devices {
  filter = [ "a|^/dev/loop[0-9]+$|", "r|.*|" ]
  obtain_device_list_from_udev = 0
  external_device_info_source = "none"
  use_devicesfile = 0
}
activation {
  udev_sync = 0
  udev_rules = 0
  verify_udev_operations = 0
  monitoring = 0
}
global {
  thin_check_executable = "/usr/sbin/thin_check"
}
backup {
  backup_dir = "/run/lvm-meta/backup"
  archive_dir = "/run/lvm-meta/archive"
}
LVM
  rm -f /etc/lvm/lvmlocal.conf
}
