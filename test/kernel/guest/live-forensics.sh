#!/bin/bash
# Runs INSIDE a vmrun.sh guest: dminspect's live forensics (snapshot / mount / release) on a real kernel,
# against a committed capture restored at /var/lib/docker:
#   A. the stopped loop-lvm root: `mount --activate-pool` each container, read its file, release; then
#      nothing is left and every origin device still has the sha256 the engine recorded;
#   B. a real dockerd 20.10 on the same root: cross-check with the live daemon, mount the running container
#      (origin suspended / resumed around create_snap) and an exited one, release; the origin's sha256 and
#      the pool's transaction id are unchanged; a mount that fails halfway leaves nothing behind;
#      after a clean stop the pool holds exactly the devices it held before.
# env: CAPTURE (capture dir), PROJECT (checkout; dist/ built), WRONG_FS (a filesystem the capture is not)
# Lines starting with "@@ " are for the test.
set -Eeuo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
: "${CAPTURE:?}" "${PROJECT:?}" "${WRONG_FS:?}"
# DMI_BIN: run the single-file binary instead of node (binary-live.test.ts), under DMI_WRAP (the Linux-3.10 launcher)
# when set; ONLY_A: stop after part A; ONLY_NAME: one container
if [ -n "${DMI_BIN:-}" ]; then DMI=(${DMI_WRAP:+"$DMI_WRAP" --} "$DMI_BIN"); else DMI=(node "$PROJECT/bin/dminspect.js"); fi
DL=/var/lib/docker
trap 'rc=$?; echo "live: failed (rc=$rc) at line $LINENO: $BASH_COMMAND" >&2; [ -f /tmp/dockerd.log ] && tail -30 /tmp/dockerd.log >&2; exit $rc' ERR
. "${GUEST_LIB:?run by test/kernel/vm/vmrun.sh, which sets GUEST_LIB}"   # bounded docker, dockerd_start/stop
for m in loop dm-thin-pool xfs ext4; do modprobe $m; done
mkdir -p $DL /etc/docker /mnt; mount -t tmpfs -o size=1500m,mode=711 dockerlib $DL
tar --sparse -xzf "$CAPTURE/docker-root.tar.gz" -C /var/lib
META=$DL/devicemapper/devicemapper/metadata
# "name path" for each container
node -e 'for (const c of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).containers) console.log(c.name, c.file.path)' \
  "$CAPTURE/engine.json" > /tmp/containers.txt
# ONLY_NAME: part A for that one container
if [ -n "${ONLY_NAME:-}" ]; then grep "^$ONLY_NAME " /tmp/containers.txt > /tmp/one.txt; mv /tmp/one.txt /tmp/containers.txt; fi

# the pool's device ids and transaction id, read by the reference tools from the (inactive) metadata file
pool_facts() {
  local l; l=$(losetup -f --show -r "$META")
  echo "ids=$(thin_ls --no-headers -o DEV "$l" | tr -s ' \n' ' ' | sed 's/^ //;s/ $//' | tr ' ' ',') txn=$(thin_dump --skip-mappings "$l" | sed -n 's/.*transaction="\([0-9]*\)".*/\1/p' | head -1)"
  losetup -d "$l"
}
leftovers() {
  echo "dm=$(dmsetup ls | grep -v 'No devices found' | awk '{print $1}' | grep -c dminspect || true) loops=$(losetup -a | wc -l) mounts=$(grep -c ' /mnt/ev' /proc/mounts || true) state=$( (ls /run/dminspect 2>/dev/null || true) | wc -l)"
}

# ---------------------------------------------------------------- A: stopped root, --activate-pool
echo "@@ A-before $(pool_facts)"
echo "@@ A-meta-before $(sha256sum "$META" | cut -d' ' -f1)"
while read -r name path; do
  "${DMI[@]}" mount "$name" /mnt/ev-$name --activate-pool --json > /tmp/mount-$name.json
  echo "@@ A-rootfs $name $(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).rootfs)' /tmp/mount-$name.json)"
  echo "@@ A-file $name $(base64 -w0 < /mnt/ev-$name/rootfs$path)"
  echo "@@ A-opts $name $(findmnt -no FSTYPE,OPTIONS /mnt/ev-$name | awk '{print $1";"$2}')"
  echo "@@ A-snapattr $name $(dmsetup info -c --noheadings -o attr "$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).snapshot.name)' /tmp/mount-$name.json)")"
  "${DMI[@]}" release /mnt/ev-$name > /dev/null
  echo "@@ A-left $name $(leftovers) pooldev=$(dmsetup ls | { grep -v 'No devices found' || true; } | wc -l) mntdir=$([ -e /mnt/ev-$name ] && echo yes || echo no)"
  # release again: nothing to do, still fine
  "${DMI[@]}" release /mnt/ev-$name > /dev/null && echo "@@ A-release-again $name ok"
done < /tmp/containers.txt
echo "@@ A-after $(pool_facts)"
echo "@@ A-meta-after $(sha256sum "$META" | cut -d' ' -f1)"
# every origin device is as the engine left it: a read_only pool (the kernel opens the metadata read-only;
# the data device is always opened read-write by pool_ctr), each device activated read-only and hashed
DATA=$(losetup -f --show $DL/devicemapper/devicemapper/data); MLOOP=$(losetup -f --show -r "$META")
dmsetup create chkpool --table "0 $(( $(blockdev --getsize64 $DATA) / 512 )) thin-pool $MLOOP $DATA 128 32768 2 skip_block_zeroing read_only"
node -e 'for (const c of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).containers) console.log(c.name, c.device.id, c.device.bytes)' "$CAPTURE/engine.json" |
while read -r name id bytes; do
  [ -n "${ONLY_NAME:-}" ] && [ "$name" != "$ONLY_NAME" ] && continue
  dmsetup create chk-$name --readonly --table "0 $((bytes / 512)) thin /dev/mapper/chkpool $id"
  echo "@@ A-origin $name $(dd if=/dev/mapper/chk-$name bs=1M status=none | sha256sum | cut -d' ' -f1)"
  dmsetup remove chk-$name
done
dmsetup remove chkpool; losetup -d $DATA $MLOOP
if [ -n "${ONLY_A:-}" ]; then echo "@@ done"; exit 0; fi

# ---------------------------------------------------------------- B: a running dockerd
OPTS=($(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).dockerdArgs.join(" "))' "$CAPTURE/engine.json"))
dockerd_start /tmp/dockerd.log 180 3 "${OPTS[@]}" || { echo "live: dockerd never answered in 3 attempts" >&2; exit $GUEST_ENGINE_HANG; }
POOL=$(docker info --format '{{range .DriverStatus}}{{if eq (index . 0) "Pool Name"}}{{index . 1}}{{end}}{{end}}')
echo "@@ B-pool $POOL"
docker start dm-running > /dev/null
for i in $(seq 30); do [ "$(docker inspect -f '{{.State.Running}}' dm-running)" = true ] && break; sleep 1; done
ORIGIN=$(docker inspect -f '{{.GraphDriver.Data.DeviceName}}' dm-running)
sleep 6; sync   # let the container's filesystem settle (journal commit interval 5 s) before the origin is hashed
echo "@@ B-origin-active $(dmsetup info -c --noheadings -o attr "$ORIGIN")"
"${DMI[@]}" container dm-running --json > /tmp/c.json
echo "@@ B-daemon $(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1])); console.log(r.daemon ? r.daemon.version : "none", r.pool.nameSource, r.pool.name, r.device.name, r.daemon ? r.daemon.findings.length : -1)' /tmp/c.json)"
TXN0=$(dmsetup status "$POOL" | awk '{print $4}')
sync
SUM0=$(dd if=/dev/mapper/$ORIGIN bs=1M status=none | sha256sum | cut -d' ' -f1)
"${DMI[@]}" mount dm-running /mnt/ev-live --dry-run > /tmp/plan.txt
echo "@@ B-plan $(grep -c '^dmsetup suspend --nolockfs' /tmp/plan.txt) $(grep -c '^dmsetup resume' /tmp/plan.txt) $(grep -c '^dmsetup message .*create_snap' /tmp/plan.txt)"
"${DMI[@]}" mount dm-running /mnt/ev-live > /tmp/mount-live.txt
echo "@@ B-file dm-running $(base64 -w0 < /mnt/ev-live/rootfs/root/running.txt)"
echo "@@ B-snapshots $("${DMI[@]}" snapshots --json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0)).snapshots.length)')"
RUNNING_AFTER=$(docker inspect -f '{{.State.Running}}' dm-running)
"${DMI[@]}" release /mnt/ev-live > /dev/null
sync
SUM1=$(dd if=/dev/mapper/$ORIGIN bs=1M status=none | sha256sum | cut -d' ' -f1)
# (after the hash: reading a file in the container updates its atime, a write to the origin by the container itself)
echo "@@ B-still-running $RUNNING_AFTER $(docker exec dm-running cat /root/running.txt | base64 -w0)"
echo "@@ B-origin-sum $SUM0 $SUM1"
echo "@@ B-txn $TXN0 $(dmsetup status "$POOL" | awk '{print $4}')"
echo "@@ B-left $(leftovers)"
# an exited container (its device is not active while dockerd runs)
"${DMI[@]}" mount dm-writer /mnt/ev-w > /dev/null
echo "@@ B-file dm-writer $(base64 -w0 < /mnt/ev-w/rootfs/data/marker.txt)"
"${DMI[@]}" release /mnt/ev-w > /dev/null
# failure halfway: the wrong filesystem type makes the mount step fail after create_snap and activation
FRC=0
"${DMI[@]}" mount dm-writer /mnt/ev-fail --fs "$WRONG_FS" > /tmp/fail.out 2> /tmp/fail.err || FRC=$?
echo "@@ B-fail rc=$FRC $(head -1 /tmp/fail.err | base64 -w0)"
echo "@@ B-fail-left $(leftovers) mntdir=$([ -e /mnt/ev-fail ] && echo yes || echo no)"
echo "@@ B-txn-end $(dmsetup status "$POOL" | awk '{print $4}')"
dockerd_stopped_or_hang
for d in $(dmsetup ls --target thin | awk '$2 ~ /^\(/ {print $1}'); do dmsetup remove "$d"; done
dmsetup info "$POOL" >/dev/null 2>&1 && dmsetup remove "$POOL"
for l in $(losetup -j $DL/devicemapper/devicemapper/data | cut -d: -f1) $(losetup -j "$META" | cut -d: -f1); do losetup -d $l; done
echo "@@ B-after $(pool_facts)"
echo "@@ done"
