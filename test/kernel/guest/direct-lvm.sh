#!/bin/bash
# Runs INSIDE a vmrun.sh guest: a real dockerd (Debian docker.io 20.10) with the devicemapper storage driver
# in direct-lvm mode. dockerd itself makes the LVM thin pool (pvcreate / vgcreate / lvcreate / lvconvert) on a
# sparse disk file behind a loop device (dm.directlvm_device). Imports a tiny busybox image from a tarball,
# makes containers that write files, records what the engine, LVM and the kernel said, hashes each
# container's thin device through the kernel while the pool is active, stops dockerd cleanly, deactivates
# the VG and archives the disk file and the Docker root (GNU tar --sparse).
# Output in $OUT (default /scratch/capture): disk.img.tar.gz, docker-root.tar.gz, engine.json, raw/, live/ (PROJECT set).
# env: DISK_SIZE (default 3G), BASESIZE (dm.basesize, default 512M: mkfs.xfs 6 needs 300 MB), HAND_POOL=1: make the pool by hand with
#      lvcreate/lvconvert and pass dm.thinpooldev (the fallback when dockerd's auto-setup fails).
#      PROJECT (a checkout with dist/ built): also `dminspect pool` on the live LVM pool, quiet and under load
#      (LIVE_RUNS runs, default 5); the capture (make-capture.sh) does not set it.
# Lines starting with "@@ " are meant for the test to parse.
set -Eeuo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export DM_DISABLE_UDEV=1     # no udev in the guest: libdevmapper makes the /dev/mapper nodes itself
DISK_SIZE=${DISK_SIZE:-3G}; BASESIZE=${BASESIZE:-512M}; HAND_POOL=${HAND_POOL:-0}
OUT=${OUT:-/scratch/capture}; RAW=$OUT/raw
rm -rf "$OUT"; mkdir -p "$RAW"
DL=/var/lib/docker
trap 'rc=$?; echo "direct-lvm: failed (rc=$rc) at line $LINENO: $BASH_COMMAND" >&2; [ -f $RAW/dockerd.log ] && tail -40 $RAW/dockerd.log >&2; exit $rc' ERR
. "${GUEST_LIB:?run by test/kernel/vm/vmrun.sh, which sets GUEST_LIB}"   # step, bounded docker, dockerd_start/stop

for m in loop dm-mod dm-thin-pool xfs; do modprobe $m; done
lvm_guest_config

# the disk: a sparse file on a tmpfs, behind a loop device; the Docker root on its own tmpfs
mkdir -p /disk $DL /etc/docker
mount -t tmpfs -o size=1500m disk /disk
mount -t tmpfs -o size=1000m,mode=711 dockerlib $DL
truncate -s "$DISK_SIZE" /disk/disk.img
LOOP=$(losetup -f --show /disk/disk.img)
echo "@@ loop $LOOP"

OPTS=(--storage-driver devicemapper
  --storage-opt dm.basesize=$BASESIZE --storage-opt dm.fs=xfs
  --storage-opt dm.override_udev_sync_check=true
  --iptables=false --ip-masq=false --bridge=none --ip-forward=false
  --exec-opt native.cgroupdriver=cgroupfs --log-level=debug)
if [ "$HAND_POOL" = 1 ]; then
  step "making the thin pool by hand"
  pvcreate -f "$LOOP"; vgcreate docker "$LOOP"
  lvcreate --wipesignatures y -n thinpool docker --extents 95%VG
  lvcreate --wipesignatures y -n thinpoolmeta docker --extents 1%VG
  lvconvert -y --zero n -c 512K --thinpool docker/thinpool --poolmetadata docker/thinpoolmeta
  OPTS+=(--storage-opt dm.thinpooldev=/dev/mapper/docker-thinpool --storage-opt dm.use_deferred_removal=false)
else
  OPTS+=(--storage-opt dm.directlvm_device=$LOOP --storage-opt dm.thinp_percent=95 --storage-opt dm.thinp_metapercent=1)
fi
printf '%s\n' "${OPTS[@]}" > $RAW/dockerd-args.txt
{ echo "dockerd=$(dockerd --version)"; echo "kernel=$(uname -r)"; echo "lvm=$(lvm version | head -1 | sed 's/ \+/ /g')"
  echo "thin_ls=$(thin_ls --version)"; } > $RAW/versions.txt

step "starting dockerd (direct-lvm on $LOOP, hand pool $HAND_POOL)"
# one attempt: dockerd's LVM setup is not repeatable on the same disk
if ! dockerd_start $RAW/dockerd.log 300 1 "${OPTS[@]}"; then
  echo "@@ dockerd-failed"
  grep -iE 'lvm|pvcreate|vgcreate|lvcreate|lvconvert|directlvm|thinpool|level=(error|fatal)' $RAW/dockerd.log | tail -40 | sed 's/^/@@ log /'
  exit 20
fi
docker info --format '{{json .}}' > $RAW/docker-info.json
POOL=$(docker info --format '{{range .DriverStatus}}{{if eq (index . 0) "Pool Name"}}{{index . 1}}{{end}}{{end}}')
echo "@@ pool $POOL"
grep -iE 'lvm|pvcreate|vgcreate|lvcreate|lvconvert|directlvm' $RAW/dockerd.log > $RAW/dockerd-lvm.log || true
step "dockerd up"

R=/tmp/rootfs; mkdir -p $R/bin $R/etc $R/tmp $R/data $R/root
cp /bin/busybox $R/bin/busybox
for a in sh ash cat echo ls sleep sync mkdir touch date id hostname sha256sum printf rm cp df mount; do ln -s busybox $R/bin/$a; done
echo 'root:x:0:0:root:/root:/bin/sh' > $R/etc/passwd; echo 'root:x:0:' > $R/etc/group
tar --numeric-owner -C $R -cf /tmp/rootfs.tar .
docker import -c 'CMD ["/bin/sh"]' -m 'busybox-static rootfs for dminspect tests' /tmp/rootfs.tar dminspect/busybox:1.35 > /dev/null
step "image imported"

MSG_A="dminspect marker: written by lvm-writer (direct-lvm)"
MSG_B="dminspect marker: written by lvm-second (direct-lvm)"
docker run --name lvm-writer --network none -e "MSG=$MSG_A" dminspect/busybox:1.35 \
  sh -c 'printf "%s\n" "$MSG" > /data/marker.txt; sync'
docker run --name lvm-second --network none -e "MSG=$MSG_B" dminspect/busybox:1.35 \
  sh -c 'mkdir -p /root/out; printf "%s\n" "$MSG" > /root/out/second.txt; i=0; while [ $i -lt 64 ]; do printf "%0512d\n" $i; i=$((i+1)); done > /root/out/pad.txt; sync'
printf '%s\t%s\n' lvm-writer /data/marker.txt lvm-second /root/out/second.txt > $RAW/files.tsv
while IFS=$'\t' read -r n f; do
  docker inspect $n > $RAW/inspect-$n.json
  docker cp "$n:$f" - | tar -xO > $RAW/file-$n.txt
done < $RAW/files.tsv
step "containers made"

lvs -a -o+seg_pe_ranges,devices --reportformat json docker > $RAW/lvs.json
lvs -a -o lv_name,lv_attr,lv_size,seg_start_pe,seg_pe_ranges,transaction_id,chunk_size,lv_metadata_size --units b > $RAW/lvs.txt
vgcfgbackup -f $RAW/vgcfgbackup.txt docker
dmsetup table > $RAW/dmsetup-table.txt; dmsetup status > $RAW/dmsetup-status.txt; dmsetup ls > $RAW/dmsetup-ls.txt
cp $DL/devicemapper/setup-config.json $RAW/ 2>/dev/null || true
# what LVM archived before each command dockerd ran (pvcreate/vgcreate/lvcreate/lvconvert/lvchange)
for f in /run/lvm-meta/archive/*.vg; do [ -e "$f" ] || continue; sed -n 's/^description = "\(.*\)"$/\1/p' "$f"; done > $RAW/lvm-history.txt
ls -la /etc/lvm/profile > $RAW/lvm-profiles.txt; cat /etc/lvm/profile/*.profile >> $RAW/lvm-profiles.txt 2>/dev/null || true
step "lvm recorded"

# ---- live (issue 12, done-when 4a on direct-lvm; PROJECT set: a checkout with dist/ built): `dminspect pool --json` on
# the LIVE LVM thin pool dockerd runs (metadata on the _tmeta LV: the `blockdev --flushbufs` read path), quiet and
# under load, against `dmsetup status`, thin_ls on the held snapshot and docker info. Results in $OUT/live/.
if [ -n "${PROJECT:-}" ]; then
  LV=$OUT/live; mkdir -p $LV/q $LV/l
  holds() { (ls /run/dminspect/*.hold 2>/dev/null || true) | wc -l; }
  dmsetup table "$POOL" > $LV/table.txt
  docker info --format '{{json .DriverStatus}}' > $LV/driver-status.json
  # quiet: one run (through the CLI's main(), pool-runs.mjs), the kernel's status just before and after it
  node "$PROJECT/test/kernel/guest/pool-runs.mjs" "$PROJECT" "$POOL" $DL 1 $LV/q
  echo "@@ live-Q-held-after $(dmsetup status "$POOL" | awk '{print $7}') holds=$(holds)"
  dmsetup message "$POOL" 0 reserve_metadata_snap
  thin_ls -m --no-headers -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS "/dev/mapper/${POOL}_tmeta" > $LV/q/thin_ls.txt
  dmsetup message "$POOL" 0 release_metadata_snap
  step "live: quiet run"
  # under load: a container writes files and syncs, while containers are created (each a new thin device and a
  # transaction); neither frees a data block, so data used and the transaction id only grow
  docker run -d --name lvm-load --network none dminspect/busybox:1.35 \
    sh -c 'i=0; while :; do j=0; while [ $j -lt 64 ]; do printf "%0511d\n" $j; j=$((j+1)); done > /data/f$i; sync; i=$((i+1)); done' \
    > /dev/null
  ( i=0; while [ ! -e /tmp/live-stop ]; do docker create --name lvm-load-$i --network none dminspect/busybox:1.35 true > /dev/null; i=$((i+1)); done; echo $i > /tmp/live-created ) &
  LPID=$!
  node "$PROJECT/test/kernel/guest/pool-runs.mjs" "$PROJECT" "$POOL" $DL ${LIVE_RUNS:-5} $LV/l
  touch /tmp/live-stop; wait $LPID
  docker kill lvm-load > /dev/null
  echo "@@ live-L-runs ${LIVE_RUNS:-5} created=$(cat /tmp/live-created)"
  echo "@@ live-L-held-after $(dmsetup status "$POOL" | awk '{print $7}') holds=$(holds)"
  step "live: runs under load"
fi

dockerd_stopped_or_hang
echo $DRC > $RAW/dockerd-exit.txt
step "dockerd stopped (exit $DRC)"
dmsetup ls > $RAW/after-stop-dmsetup-ls.txt
dmsetup status "$POOL" > $RAW/pool-status.txt

# each container's thin device through the kernel, while the LVM pool is still active
while IFS=$'\t' read -r n f; do
  node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[0].GraphDriver.Data; console.log(d.DeviceName, d.DeviceId, d.DeviceSize)' $RAW/inspect-$n.json
done < $RAW/files.tsv > $RAW/devices.txt
while read -r name id size; do
  dmsetup create "$name" --readonly --table "0 $((size / 512)) thin /dev/mapper/$POOL $id"
  echo "$name $id $(blockdev --getsize64 /dev/mapper/$name) $(dd if=/dev/mapper/$name bs=1M status=none | sha256sum | cut -d' ' -f1)" >> $RAW/device-sha256.txt
  dmsetup remove "$name"
done < $RAW/devices.txt
step "devices hashed"

dmsetup message "$POOL" 0 reserve_metadata_snap
thin_ls --metadata-snap -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS "/dev/mapper/docker-thinpool_tmeta" > $RAW/thin_ls.txt || true
dmsetup message "$POOL" 0 release_metadata_snap
vgchange -an docker
dmsetup ls > $RAW/after-vgchange.txt
losetup -d "$LOOP"
echo "$(sha256sum /disk/disk.img | cut -d' ' -f1)" > $RAW/disk-sha256.txt
step "vg deactivated"

tar --sparse --numeric-owner -C /disk -czf $OUT/disk.img.tar.gz disk.img
tar --sparse --numeric-owner --exclude='*-json.log' -C /var/lib -czf $OUT/docker-root.tar.gz \
  docker/devicemapper docker/image docker/containers
{ echo "disk-apparent $(stat -c %s /disk/disk.img)"; echo "disk-allocated $(du -B1 /disk/disk.img | cut -f1)"; } > $RAW/du.txt
step "archived (disk $(du -h $OUT/disk.img.tar.gz | cut -f1), root $(du -h $OUT/docker-root.tar.gz | cut -f1))"

POOL=$POOL node - "$RAW" "$OUT/engine.json" <<'EOF'
const fs = require('fs'); const path = require('path');
const [raw, out] = process.argv.slice(2);
const read = (f) => fs.readFileSync(path.join(raw, f), 'utf8');
const lines = (f) => read(f).split('\n').filter(Boolean);
const info = JSON.parse(read('docker-info.json'));
const sha = new Map(lines('device-sha256.txt').map((l) => { const [n, id, bytes, s] = l.split(' '); return [n, { id: Number(id), bytes: Number(bytes), sha256: s }]; }));
const containers = lines('files.tsv').map((l) => {
  const [name, file] = l.split('\t');
  const c = JSON.parse(read(`inspect-${name}.json`))[0];
  const gd = c.GraphDriver.Data;
  return { id: c.Id, name, state: c.State.Status, image: c.Config.Image, graphDriver: c.GraphDriver,
    deviceName: gd.DeviceName, deviceId: Number(gd.DeviceId), deviceSize: Number(gd.DeviceSize),
    device: sha.get(gd.DeviceName) ?? null, file: { path: file, content: read(`file-${name}.txt`) } };
});
const status = read('pool-status.txt').trim().split(/\s+/);
const du = Object.fromEntries(lines('du.txt').map((l) => l.split(' ')).map(([k, v]) => [k, Number(v)]));
const engine = {
  schema: 1,
  about: 'Recorded from a real dockerd 20.10 (devicemapper, direct-lvm: dockerd made the LVM thin pool on a loop device) in a QEMU guest by test/kernel/guest/direct-lvm.sh. disk.img.tar.gz holds the whole disk (GNU tar --sparse) after a clean stop and vgchange -an; docker-root.tar.gz the Docker root. device.sha256 is the sha256 of the whole thin device, read through the kernel while the pool was active after the stop.',
  versions: Object.fromEntries(lines('versions.txt').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])),
  dockerdArgs: lines('dockerd-args.txt'),
  dockerdExit: Number(read('dockerd-exit.txt').trim()),
  driverStatus: Object.fromEntries(info.DriverStatus ?? []),
  pool: { name: process.env.POOL, status: status.join(' '), transactionId: Number(status[3]) },
  setupConfig: fs.existsSync(path.join(raw, 'setup-config.json')) ? JSON.parse(read('setup-config.json')) : null,
  lvs: JSON.parse(read('lvs.json')),
  vgcfgbackup: read('vgcfgbackup.txt'),
  lvmHistory: lines('lvm-history.txt'),
  dmsetupTable: lines('dmsetup-table.txt'),
  thinLs: fs.existsSync(path.join(raw, 'thin_ls.txt')) ? lines('thin_ls.txt') : [],
  disk: { file: 'disk.img.tar.gz', member: 'disk.img', apparentBytes: du['disk-apparent'], allocatedBytes: du['disk-allocated'], sha256: read('disk-sha256.txt').trim() },
  tarball: { file: 'docker-root.tar.gz', root: 'docker' },
  containers,
};
fs.writeFileSync(out, JSON.stringify(engine, null, 2) + '\n');
EOF
echo "@@ engine $(stat -c %s $OUT/engine.json)"
echo "@@ done"
