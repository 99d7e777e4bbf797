#!/bin/bash
# Runs INSIDE a vmrun.sh guest: a real dockerd 20.10 (devicemapper, loop-lvm, ext4) where a container writes a
# file and is then removed with `docker rm`, for `dminspect deleted` / `export --deleted`. Two Docker roots, one
# dockerd after the other:
#   nodiscard: --storage-opt dm.blkdiscard=false (Docker deletes the thin device without discarding it first)
#   discard:   the default (dm.blkdiscard=true on loop-lvm: the device is discarded, holes punched in the data file)
#   directlvm: dm.directlvm_device on a loop device over a sparse disk file, dm.blkdiscard=false; DIRECT_LVM=0 skips
# Each root is archived (GNU tar --sparse) to $OUT/<name>.tar.gz after a clean stop.
# Lines starting with "@@ " are meant for the test to parse: "@@ <name> <key> <value>"; "@@ step <uptime> <what>"
# marks progress, so a run that hangs shows where.
# Every docker command and dockerd stop is bounded (lib.sh: STEP_TIMEOUT, default 300 s); one that overruns ends the
# script with exit 124: the engine hung (seen once on a busy TCG host), which the test tells from a failed check.
# env: OUT (default /scratch/out), MARKER, STEP_TIMEOUT
set -Eeuo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin   # Debian's docker 20.10 CLI, not a newer /usr/local/bin/docker
OUT=${OUT:-/scratch/out}; mkdir -p "$OUT"
MARKER=${MARKER:-dminspect deleted-container marker}
trap 'rc=$?; echo "docker-deleted: failed (rc=$rc) at line $LINENO: $BASH_COMMAND" >&2; for f in /tmp/dockerd-*.log; do grep -E "level=(error|fatal)" "$f" | tail -n 5 >&2; done; exit $rc' ERR
. "${GUEST_LIB:?run by test/kernel/vm/vmrun.sh, which sets GUEST_LIB}"
for m in loop dm-thin-pool ext4; do modprobe $m; done

R=/tmp/rootfs; mkdir -p $R/bin $R/etc $R/tmp $R/data $R/root
cp /bin/busybox $R/bin/busybox
for a in sh cat echo ls sleep sync mkdir printf rm head; do ln -s busybox $R/bin/$a; done
echo 'root:x:0:0:root:/root:/bin/sh' > $R/etc/passwd; echo 'root:x:0:' > $R/etc/group
tar --numeric-owner -C $R -cf /tmp/rootfs.tar .

run_root() {
  local name=$1; shift
  local DL=/var/lib/docker-$name
  mkdir -p $DL; mount -t tmpfs -o size=1200m,mode=711 "dl-$name" $DL
  export DOCKER_HOST=unix:///run/docker-$name.sock
  step "$name: starting dockerd"
  dockerd_start /tmp/dockerd-$name.log 240 3 --data-root $DL --exec-root /run/docker-$name --pidfile /run/docker-$name.pid \
    -H $DOCKER_HOST \
    --storage-driver devicemapper --storage-opt dm.loopdatasize=1G --storage-opt dm.loopmetadatasize=16M \
    --storage-opt dm.basesize=64M --storage-opt dm.fs=ext4 --storage-opt dm.override_udev_sync_check=true "$@" \
    --iptables=false --ip-masq=false --bridge=none --ip-forward=false --exec-opt native.cgroupdriver=cgroupfs ||
    { echo "docker-deleted: dockerd ($name) never answered in 3 attempts" >&2; exit $GUEST_ENGINE_HANG; }
  step "$name: dockerd up"
  docker import -c 'CMD ["/bin/sh"]' /tmp/rootfs.tar dminspect/busybox:deleted > /dev/null
  # the container writes its file (in its own blocks: the RW layer), then exits
  docker run --name victim --network none -e "MSG=$MARKER ($name)" dminspect/busybox:deleted \
    sh -c 'printf "%s\n" "$MSG" > /data/evidence.txt; head -c 300000 /bin/busybox > /data/blob; sync'
  echo "@@ $name device $(docker inspect -f '{{.GraphDriver.Data.DeviceId}} {{.GraphDriver.Data.DeviceSize}} {{.GraphDriver.Data.DeviceName}}' victim)"
  echo "@@ $name file-sha256 $(printf '%s\n' "$MARKER ($name)" | sha256sum | cut -d' ' -f1)"
  echo "@@ $name blob-sha256 $(head -c 300000 /bin/busybox | sha256sum | cut -d' ' -f1)"
  step "$name: container ran"
  docker rm victim > /dev/null
  echo "@@ $name records $(ls $DL/devicemapper/metadata | grep -v -e deviceset-metadata -e transaction-metadata | wc -l)"
  dockerd_stopped_or_hang
  step "$name: dockerd stopped"
  for d in $(dmsetup ls --target thin | awk '$2 ~ /^\(/ {print $1}'); do bounded dmsetup remove "$d"; done
  for p in $(dmsetup ls --target thin-pool | awk '$2 ~ /^\(/ && $1 !~ /^docker-thinpool/ {print $1}'); do bounded dmsetup remove "$p"; done
  if [ -f $DL/devicemapper/devicemapper/data ]; then
    for l in $(losetup -j $DL/devicemapper/devicemapper/data | cut -d: -f1) $(losetup -j $DL/devicemapper/devicemapper/metadata | cut -d: -f1); do losetup -d $l; done
    echo "@@ $name data-allocated $(du -B1 $DL/devicemapper/devicemapper/data | cut -f1)"
  fi
  tar --sparse --numeric-owner --exclude='*-json.log' -C $DL -czf "$OUT/$name.tar.gz" devicemapper image containers
  echo "@@ $name archived $(du -b "$OUT/$name.tar.gz" | cut -f1)"
  umount $DL
}

# direct-lvm: dockerd makes an LVM thin pool on a loop device (dm.directlvm_device); discard turned off (see below).
# The disk file and the root are archived after a clean stop and vgchange -an.
run_directlvm() {
  local name=directlvm
  export DM_DISABLE_UDEV=1
  lvm_guest_config
  mkdir -p /disk; mount -t tmpfs -o size=1200m disk /disk
  truncate -s 1G /disk/disk.img
  local LOOP; LOOP=$(losetup -f --show /disk/disk.img)
  # dockerd makes the LVM thin pool itself (dm.directlvm_device). Docker 20.10 kept dm.blkdiscard on there (it seems to
  # decide before its direct-lvm setup names the pool: in a run the container's blocks were all zeros, and
  # dminspect reported them discarded). Turned off here, as with a pool passed by dm.thinpooldev.
  run_root $name --storage-opt dm.directlvm_device=$LOOP --storage-opt dm.thinp_percent=95 --storage-opt dm.thinp_metapercent=1 \
    --storage-opt dm.blkdiscard=false
  bounded vgchange -an docker > /dev/null
  losetup -d "$LOOP"
  tar --sparse -C /disk -czf "$OUT/$name-disk.tar.gz" disk.img
  echo "@@ $name disk-archived $(du -b "$OUT/$name-disk.tar.gz" | cut -f1)"
}

run_root nodiscard --storage-opt dm.blkdiscard=false
run_root discard
[ "${DIRECT_LVM:-1}" = 1 ] && run_directlvm
step "all roots archived"
echo "@@ done"
