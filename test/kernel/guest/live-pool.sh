#!/bin/bash
# Runs INSIDE a vmrun.sh guest: `dminspect pool` on a LIVE loop-lvm pool (issue 12), made as Docker's loop-lvm
# makes it (sparse data + metadata files on loop devices, the pool named docker-MAJ:MIN-INO-pool from the stat of
# <root>/devicemapper, table `thin-pool <meta> <data> 128 32768 1 skip_block_zeroing`), in a minimal Docker root.
#   Q. quiet pool: pool --json against dmsetup status before/after, and thin_ls -m per device; no hold left
#   C. another holder (a plain reserve_metadata_snap): refused (exit 9); --metadata-snap reads theirs
#   K. a run SIGKILLed while holding (DMINSPECT_TEST_HOLD_MS): the hold and its record stay; the next run clears them
#   T. the metrics textfile written from the live pool
#   L. under load (thin devices created, written, deactivated, empty ones deleted): pool --json $RUNS times, in one
#      node process through the CLI's main() (pool-runs.mjs: a node start costs ~30 s under TCG)
#   X. deleted --json on the live pool after the load (through a held snapshot): its live ids are the pool's
#   B. (DMI_BIN set: this section alone) the single-file binary: the same report as Node's; SIGTERM during its held
#      read releases the hold at once (the read runs in a worker thread)
# Per-run files go to /scratch/ (the test reads them); lines starting with "@@ " are for the test.
# env: PROJECT (checkout; dist/ built), RUNS (default 50), DMI_BIN (the binary), DMI_WRAP (its launcher)
set -Eeuo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
: "${PROJECT:?}"
RUNS=${RUNS:-50}
DMI=(node "$PROJECT/bin/dminspect.js")
DL=/var/lib/docker
trap 'rc=$?; echo "live-pool: failed (rc=$rc) at line $LINENO: $BASH_COMMAND" >&2; exit $rc' ERR
. "${GUEST_LIB:?run by test/kernel/vm/vmrun.sh, which sets GUEST_LIB}"   # bounded docker, dockerd_start/stop
for m in loop dm-thin-pool; do modprobe $m; done
mkdir -p $DL; mount -t tmpfs -o size=600m dockerlib $DL
mkdir -p $DL/devicemapper/devicemapper $DL/devicemapper/metadata $DL/containers
truncate -s 1G $DL/devicemapper/devicemapper/data
truncate -s 64M $DL/devicemapper/devicemapper/metadata
read -r DEV INO < <(stat -c '%d %i' $DL/devicemapper)
POOL="docker-$(( (DEV >> 8) & 0xfff )):$(( (DEV & 0xff) | ((DEV >> 12) & 0xfff00) ))-$INO-pool"
DLOOP=$(losetup -f --show $DL/devicemapper/devicemapper/data)
MLOOP=$(losetup -f --show $DL/devicemapper/devicemapper/metadata)
dmsetup create "$POOL" --table "0 $(( $(blockdev --getsize64 $DLOOP) / 512 )) thin-pool $MLOOP $DLOOP 128 32768 1 skip_block_zeroing"
echo "@@ pool $POOL"
echo "@@ kernel $(uname -r)"
status() { dmsetup status "$POOL" | awk '{print $4, $5, $6, $7, $8}'; }   # txn um/tm ud/td held mode
held() { dmsetup status "$POOL" | awk '{print $7}'; }
# as Docker does after every create and delete: set_transaction_id <current> <current + 1>
bump() { local t; t=$(dmsetup status "$POOL" | awk '{print $4}'); dmsetup message "$POOL" 0 "set_transaction_id $t $((t + 1))"; }
holds() { (ls /run/dminspect/*.hold 2>/dev/null || true) | wc -l; }
# up to 120 s for a dminspect run to hold a snapshot: the kernel shows a held root and the hold record has it
wait_held() { for i in $(seq 600); do [ "$(held)" != "-" ] && grep -q heldRoot\":[0-9] /run/dminspect/"$POOL".hold 2>/dev/null && break; sleep 0.2; done; }
thin() {   # id MiB: a thin device with MiB written
  dmsetup message "$POOL" 0 "create_thin $1"; bump
  dmsetup create "t$1" --table "0 131072 thin /dev/mapper/$POOL $1"
  dd if=/dev/urandom of="/dev/mapper/t$1" bs=1M count="$2" oflag=direct status=none
  dmsetup remove "t$1"
}
thin 1 3; thin 2 5; thin 3 1
dmsetup message "$POOL" 0 "create_snap 4 2"; bump
mkdir -p /scratch/q /scratch/l

# ---------------------------------------------------------------- B: the single-file binary (DMI_BIN set: B alone)
if [ -n "${DMI_BIN:-}" ]; then
  BIN=(${DMI_WRAP:+"$DMI_WRAP"} "$DMI_BIN")
  mkdir -p /scratch/b
  "${DMI[@]}" pool --root $DL --json > /scratch/b/node.json
  "${BIN[@]}" pool --root $DL --json > /scratch/b/binary.json
  echo "@@ B-held-after $(held) holds=$(holds)"
  # SIGTERM in the middle of the held read (slowed by the test hook): the binary reads in a worker thread, so its
  # main thread releases the hold at once and exits 143 (a read on the main thread would ignore the hook and finish)
  DMINSPECT_TEST_READ_MS=600000 "${BIN[@]}" pool --root $DL --json > /dev/null 2> /scratch/b/term.err &
  BPID=$!
  wait_held
  echo "@@ B-during $(held)"
  sleep 3
  BT0=$(date +%s%N); kill -TERM $BPID; BRC=0; wait $BPID || BRC=$?; BT1=$(date +%s%N)
  echo "@@ B-term rc=$BRC ms=$(( (BT1 - BT0) / 1000000 )) held=$(held) holds=$(holds) stderr-lines=$(wc -l < /scratch/b/term.err)"
  dmsetup remove "$POOL"; losetup -d $DLOOP $MLOOP
  echo "@@ done"
  exit 0
fi

# ---------------------------------------------------------------- Q: quiet
S0=$(status)
T0=$(date +%s%N)
"${DMI[@]}" pool --root $DL --json > /scratch/q/pool.json
T1=$(date +%s%N)
S1=$(status)
echo "@@ Q-status $S0 | $S1"
echo "@@ Q-ms $(( (T1 - T0) / 1000000 ))"
echo "@@ Q-held-after $(held) holds=$(holds)"
dmsetup message "$POOL" 0 reserve_metadata_snap
thin_ls -m --no-headers -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS "$MLOOP" > /scratch/q/thin_ls.txt
dmsetup message "$POOL" 0 release_metadata_snap
"${DMI[@]}" pool --root $DL --dry-run > /scratch/q/dry-run.txt
echo "@@ Q-dry-held $(held) holds=$(holds)"

# ---------------------------------------------------------------- C: another holder
dmsetup message "$POOL" 0 reserve_metadata_snap
THEIRS=$(held)
CRC=0; "${DMI[@]}" pool --root $DL --json > /dev/null 2> /scratch/c-err.txt || CRC=$?
echo "@@ C-refused rc=$CRC lines=$(wc -l < /scratch/c-err.txt)"
"${DMI[@]}" pool --root $DL --metadata-snap --json > /scratch/c-snap.json
echo "@@ C-theirs $THEIRS $(held)"
dmsetup message "$POOL" 0 release_metadata_snap

# ---------------------------------------------------------------- K: SIGKILL while holding
DMINSPECT_TEST_HOLD_MS=120000 "${DMI[@]}" pool --root $DL --json > /dev/null 2>&1 &
KPID=$!
wait_held
kill -KILL $KPID; wait $KPID || true
echo "@@ K-left $(held) holds=$(holds) pid=$KPID"
cp /run/dminspect/"$POOL".hold /scratch/k-record.json || true
"${DMI[@]}" pool --root $DL --json > /scratch/k-next.json
echo "@@ K-after $(held) holds=$(holds)"

# ---------------------------------------------------------------- T: metrics textfile
mkdir -p /tmp/tf
"${DMI[@]}" pool --root $DL --textfile /tmp/tf
cp /tmp/tf/dminspect.prom /scratch/dminspect.prom
echo "@@ T-status $(status)"

# ---------------------------------------------------------------- L: under load
work() {
  local id=100
  while [ ! -e /tmp/stop ]; do
    dmsetup message "$POOL" 0 "create_thin $id"; bump
    dmsetup create "w$id" --table "0 65536 thin /dev/mapper/$POOL $id"
    dd if=/dev/urandom of="/dev/mapper/w$id" bs=64k count=$(( RANDOM % 32 + 1 )) oflag=direct status=none
    dmsetup remove "w$id"
    # an empty device made and deleted: a delete that frees no data block (data used stays monotonic)
    dmsetup message "$POOL" 0 "create_thin $((id + 1))"; bump
    dmsetup message "$POOL" 0 "delete $((id + 1))"; bump
    id=$((id + 2))
    echo $id > /tmp/work-id
  done
}
work > /tmp/work.log 2>&1 &
WPID=$!
SL0=$(status)
LT0=$(date +%s)
node "$PROJECT/test/kernel/guest/pool-runs.mjs" "$PROJECT" "$POOL" $DL "$RUNS" /scratch/l
LT1=$(date +%s)
touch /tmp/stop; wait $WPID || { echo "workload failed:" >&2; tail /tmp/work.log >&2; exit 30; }
echo "@@ L-status $SL0 | $(status)"
echo "@@ L-runs $RUNS seconds=$((LT1 - LT0)) work-devices=$(( ($(cat /tmp/work-id) - 100) / 2 ))"
echo "@@ L-held-after $(held) holds=$(holds)"

# ---------------------------------------------------------------- X: deleted on the live pool (after the load)
XRC=0; "${DMI[@]}" deleted --root $DL --json > /scratch/deleted.json 2> /scratch/deleted.err || XRC=$?
echo "@@ X-deleted rc=$XRC next-id=$(cat /tmp/work-id) held=$(held) holds=$(holds)"
dmsetup remove "$POOL"; losetup -d $DLOOP $MLOOP

# ---------------------------------------------------------------- D: a real dockerd 20.10 (CAPTURE set)
if [ -n "${CAPTURE:-}" ]; then
  umount $DL; mount -t tmpfs -o size=1500m,mode=711 dockerlib $DL
  tar --sparse -xzf "$CAPTURE/docker-root.tar.gz" -C /var/lib
  for m in xfs ext4; do modprobe $m; done
  mkdir -p /etc/docker /scratch/d
  OPTS=($(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).dockerdArgs.join(" "))' "$CAPTURE/engine.json"))
  dockerd_start /tmp/dockerd.log 180 3 "${OPTS[@]}" ||
    { echo "live-pool: dockerd never answered in 3 attempts" >&2; tail /tmp/dockerd.log >&2; exit $GUEST_ENGINE_HANG; }
  DPOOL=$(docker info --format '{{range .DriverStatus}}{{if eq (index . 0) "Pool Name"}}{{index . 1}}{{end}}{{end}}')
  echo "@@ D-pool $DPOOL"
  D0=$(dmsetup status "$DPOOL" | awk '{print $4, $5, $6, $7, $8}')
  docker info --format '{{json .DriverStatus}}' > /scratch/d/driver-status.json
  "${DMI[@]}" pool --root $DL --json > /scratch/d/pool.json
  D1=$(dmsetup status "$DPOOL" | awk '{print $4, $5, $6, $7, $8}')
  echo "@@ D-status $D0 | $D1"
  echo "@@ D-held-after $(dmsetup status "$DPOOL" | awk '{print $7}') holds=$(holds)"
  dockerd_stopped_or_hang
fi
echo "@@ done"
