#!/bin/bash
# Runs INSIDE a vmrun.sh guest: a real dockerd (Debian docker.io 20.10) with the devicemapper
# storage driver in loop-lvm mode. Imports a tiny busybox image from a tarball (no registry),
# makes containers that exit / are only created / keep running, each with its own file, records
# what the engine says, stops dockerd cleanly, archives the Docker root (GNU tar --sparse) and
# hashes each container's thin device read through the kernel.
# Output in $OUT (default /scratch/capture): docker-root.tar.gz, engine.json, raw/ (all records).
# env: DM_FS=xfs|ext4 (default xfs), BASESIZE (default 512M for xfs, 128M for ext4),
#      DATASIZE (dm.loopdatasize, default 2G), METASIZE (dm.loopmetadatasize, default 64M)
# Lines starting with "@@ " are meant for the test to parse.
set -Eeuo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin   # Debian's docker 20.10 CLI, not a newer /usr/local/bin/docker
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENGINE_JSON_MJS=${ENGINE_JSON_MJS:-$HERE/engine-json.mjs}   # the script may run from a copy: pass the path
DM_FS=${DM_FS:-xfs}
case $DM_FS in xfs) BASESIZE=${BASESIZE:-512M};; ext4) BASESIZE=${BASESIZE:-128M};; *) echo "DM_FS must be xfs or ext4" >&2; exit 2;; esac
DATASIZE=${DATASIZE:-2G}; METASIZE=${METASIZE:-64M}
HASH_IMAGES=${HASH_IMAGES:-1}     # 0: hash only the containers' devices (faster)
OUT=${OUT:-/scratch/capture}; RAW=$OUT/raw
[ -r "$ENGINE_JSON_MJS" ] || { echo "capture: $ENGINE_JSON_MJS not found (set ENGINE_JSON_MJS)" >&2; exit 2; }
rm -rf "$OUT"; mkdir -p "$RAW"
DL=/var/lib/docker
trap 'rc=$?; echo "capture: failed (rc=$rc) at line $LINENO: $BASH_COMMAND" >&2; [ -f $RAW/dockerd.log ] && tail -30 $RAW/dockerd.log >&2; exit $rc' ERR
. "${GUEST_LIB:?run by test/kernel/vm/vmrun.sh, which sets GUEST_LIB}"   # step, bounded docker, dockerd_start/stop

for m in loop dm-thin-pool xfs ext4; do modprobe $m; done
# the Docker root on its own tmpfs: loop-backed files must not sit on the overlay root
mkdir -p $DL /etc/docker; mount -t tmpfs -o size=1500m,mode=711 dockerlib $DL
OPTS=(--storage-driver devicemapper
  --storage-opt dm.loopdatasize=$DATASIZE --storage-opt dm.loopmetadatasize=$METASIZE
  --storage-opt dm.basesize=$BASESIZE --storage-opt dm.fs=$DM_FS
  --storage-opt dm.override_udev_sync_check=true
  --iptables=false --ip-masq=false --bridge=none --ip-forward=false
  --exec-opt native.cgroupdriver=cgroupfs --log-level=info)
printf '%s\n' "${OPTS[@]}" > $RAW/dockerd-args.txt
{ echo "dockerd=$(dockerd --version)"; echo "docker=$(docker --version)"; echo "containerd=$(containerd --version)"
  echo "runc=$(runc --version | head -1)"; echo "kernel=$(uname -r)"; echo "dmsetup=$(dmsetup --version | tr '\n' ' ')"
  echo "thin_ls=$(thin_ls --version)"; } > $RAW/versions.txt

step "starting dockerd (fs=$DM_FS basesize=$BASESIZE)"
dockerd_start $RAW/dockerd.log 180 3 "${OPTS[@]}" || { echo "capture: dockerd never answered in 3 attempts" >&2; exit $GUEST_ENGINE_HANG; }
docker info --format '{{json .}}' > $RAW/docker-info.json
docker version --format '{{json .}}' > $RAW/docker-version.json
POOL=$(docker info --format '{{range .DriverStatus}}{{if eq (index . 0) "Pool Name"}}{{index . 1}}{{end}}{{end}}')
stat -c '%Hd %Ld %i %d' $DL/devicemapper > $RAW/devicemapper-stat.txt
echo "@@ pool $POOL"
step "dockerd up"

# a tiny image from busybox-static, imported from a tarball (no registry)
R=/tmp/rootfs; mkdir -p $R/bin $R/etc $R/tmp $R/data $R/root
cp /bin/busybox $R/bin/busybox
for a in sh ash cat echo ls sleep sync mkdir touch date id hostname sha256sum printf rm cp df mount; do ln -s busybox $R/bin/$a; done
echo 'root:x:0:0:root:/root:/bin/sh' > $R/etc/passwd; echo 'root:x:0:' > $R/etc/group
tar --numeric-owner -C $R -cf /tmp/rootfs.tar .
docker import -c 'CMD ["/bin/sh"]' -m 'busybox-static rootfs for dminspect tests' /tmp/rootfs.tar dminspect/busybox:1.35 > /dev/null
step "image imported"

MSG_W="dminspect marker: written by dm-writer ($DM_FS)"
MSG_C="dminspect marker: copied into dm-created with docker cp ($DM_FS)"
MSG_R="dminspect marker: written by dm-running ($DM_FS)"
# container that runs to completion and writes a file in its RW layer
docker run --name dm-writer --network none -e "MSG=$MSG_W" dminspect/busybox:1.35 \
  sh -c 'printf "%s\n" "$MSG" > /data/marker.txt; sync'
# a second image layer (commit of dm-writer): a layer chain of depth 2
docker commit -m 'layer2: contains /data/marker.txt' dm-writer dminspect/busybox:layer2 > /dev/null
# container that is only created, never started; its file is put in with docker cp
docker create --name dm-created --network none dminspect/busybox:1.35 sh -c 'sleep 3600' > /dev/null
printf '%s\n' "$MSG_C" > /tmp/cp-marker.txt
docker cp /tmp/cp-marker.txt dm-created:/root/cp-marker.txt
# container that is still running when dockerd stops (exits promptly on SIGTERM)
docker run -d --name dm-running --network none -e "MSG=$MSG_R" dminspect/busybox:layer2 \
  sh -c 'printf "%s\n" "$MSG" > /root/running.txt; sync; trap "exit 0" TERM; while :; do sleep 1; done' > /dev/null
for i in $(seq 30); do docker exec dm-running cat /root/running.txt >/dev/null 2>&1 && break; sleep 1; done
step "containers made"

# what the engine says, while it runs
printf '%s\t%s\n' dm-writer /data/marker.txt dm-created /root/cp-marker.txt dm-running /root/running.txt > $RAW/files.tsv
while IFS=$'\t' read -r n f; do
  docker inspect $n > $RAW/inspect-$n.json
  docker cp "$n:$f" - | tar -xO > $RAW/file-$n.txt     # the file as the engine reads it back
  docker diff $n > $RAW/diff-$n.txt
done < $RAW/files.tsv
docker image inspect dminspect/busybox:1.35 dminspect/busybox:layer2 > $RAW/images.json
docker ps -a --no-trunc --format '{{json .}}' > $RAW/docker-ps.jsonl
dmsetup ls > $RAW/dmsetup-ls.txt; dmsetup table > $RAW/dmsetup-table.txt; dmsetup status > $RAW/dmsetup-status.txt
dmsetup info -c > $RAW/dmsetup-info.txt; losetup -a > $RAW/losetup.txt
dmsetup table "$POOL" > $RAW/pool-table.txt
METALOOP=$(losetup -j $DL/devicemapper/devicemapper/metadata | cut -d: -f1)
dmsetup message "$POOL" 0 reserve_metadata_snap
thin_ls --metadata-snap -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,MAPPED_BYTES "$METALOOP" > $RAW/thin_ls.txt
thin_dump --metadata-snap "$METALOOP" > $RAW/thin_dump.xml
dmsetup message "$POOL" 0 release_metadata_snap
step "engine recorded"

dockerd_stopped_or_hang
echo $DRC > $RAW/dockerd-exit.txt
step "dockerd stopped (exit $DRC)"
# the containers' state as the stopped engine left it on disk
while IFS=$'\t' read -r n f; do
  id=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[0].Id)' $RAW/inspect-$n.json)
  node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(JSON.stringify(j.State))' \
    $DL/containers/$id/config.v2.json > $RAW/state-after-stop-$n.json
done < $RAW/files.tsv
{ echo "## dmsetup ls"; dmsetup ls; echo "## losetup -a"; losetup -a; echo "## processes"; ps -eo comm | grep -E 'docker|containerd|runc' || true; } > $RAW/after-stop.txt 2>&1
# loop-lvm: a clean stop removes the devices and the pool; make sure, so the files are final
for d in $(dmsetup ls --target thin | awk '$2 ~ /^\(/ {print $1}'); do dmsetup remove "$d"; done
dmsetup info "$POOL" >/dev/null 2>&1 && dmsetup remove "$POOL"
for l in $(losetup -j $DL/devicemapper/devicemapper/data | cut -d: -f1) $(losetup -j $DL/devicemapper/devicemapper/metadata | cut -d: -f1); do losetup -d $l; done

# the capture: only what offline analysis needs (no logs, no network/plugins/buildkit state)
tar --sparse --numeric-owner --exclude='*-json.log' -C /var/lib -czf $OUT/docker-root.tar.gz \
  docker/devicemapper docker/image docker/containers
{ echo "apparent $(du -sb --apparent-size $DL | cut -f1)"; echo "allocated $(du -sB1 $DL | cut -f1)"; } > $RAW/du.txt
step "archived ($(du -h $OUT/docker-root.tar.gz | cut -f1))"

# sha256 of each container's (and image layer's) thin device, read through the kernel: pool made
# again from the now-final files with the very table docker used (only the loop devices differ)
DATA=$(losetup -f --show $DL/devicemapper/devicemapper/data); META=$(losetup -f --show $DL/devicemapper/devicemapper/metadata)
TABLE=$(awk -v m="$(stat -L -c '%Hr:%Lr' $META)" -v d="$(stat -L -c '%Hr:%Lr' $DATA)" '{$4=m; $5=d; print}' $RAW/pool-table.txt)
echo "$TABLE" > $RAW/hash-pool-table.txt
dmsetup create "$POOL" --table "$TABLE"
node -e '
  const fs = require("fs"); const raw = process.argv[1]; const out = [];
  for (const n of ["dm-writer", "dm-created", "dm-running"]) out.push(JSON.parse(fs.readFileSync(`${raw}/inspect-${n}.json`, "utf8"))[0].GraphDriver.Data);
  if (process.argv[2] !== "0") for (const i of JSON.parse(fs.readFileSync(`${raw}/images.json`, "utf8"))) out.push(i.GraphDriver.Data);
  for (const d of out) console.log(d.DeviceName, d.DeviceId, d.DeviceSize);' $RAW "$HASH_IMAGES" | sort -u > $RAW/devices.txt
hash_device() { # NAME ID SIZE -> "NAME ID BYTES SHA256" in $RAW/sha/NAME
  dmsetup create "$1" --readonly --table "0 $(($3 / 512)) thin /dev/mapper/$POOL $2"
  echo "$1 $2 $(blockdev --getsize64 /dev/mapper/$1) $(dd if=/dev/mapper/$1 bs=1M status=none | sha256sum | cut -d' ' -f1)" > $RAW/sha/$1
  dmsetup remove "$1"
}
export -f hash_device; export POOL RAW
mkdir -p $RAW/sha
xargs -P 2 -L 1 bash -c 'hash_device "$@"' _ < $RAW/devices.txt     # 2 vCPUs: two devices at a time
cat $RAW/sha/* > $RAW/device-sha256.txt; rm -r $RAW/sha
[ "$(wc -l < $RAW/device-sha256.txt)" = "$(wc -l < $RAW/devices.txt)" ]
dmsetup remove "$POOL"; losetup -d "$DATA" "$META"
step "devices hashed"

node "$ENGINE_JSON_MJS" "$RAW" "$DM_FS" > $OUT/engine.json
echo "@@ tarball $(stat -c %s $OUT/docker-root.tar.gz)"
echo "@@ done"
