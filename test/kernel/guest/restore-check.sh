#!/bin/bash
# Runs INSIDE a vmrun.sh guest: restore a capture made by docker-capture.sh (docker-root.tar.gz +
# engine.json in $CAPTURE, a host dir the guest sees at the same path) into a tmpfs with GNU tar
# --sparse, loop the pool's data/metadata files, create the pool with Docker's table, then for each
# container activate its thin device READ-ONLY, hash it, mount it read-only and read its file.
# Works on a restored copy only. Lines starting with "@@ " are meant for the test to parse.
# env: CAPTURE (dir with docker-root.tar.gz and engine.json), HASH_PARALLEL (default 2)
set -Eeuo pipefail
trap 'rc=$?; echo "restore-check: failed (rc=$rc) at line $LINENO: $BASH_COMMAND" >&2; exit $rc' ERR
: "${CAPTURE:?set CAPTURE to a capture dir}"
ENGINE=$CAPTURE/engine.json
for m in loop dm-thin-pool xfs ext4; do modprobe $m; done
mkdir -p /restore; mount -t tmpfs -o size=1500m restore /restore
tar --sparse -xzf "$CAPTURE/docker-root.tar.gz" -C /restore
D=/restore/docker; DM=$D/devicemapper/devicemapper
echo "@@ restored $(du -sb --apparent-size $D | cut -f1) $(du -sB1 $D | cut -f1)"
DATA=$(losetup -f --show $DM/data); META=$(losetup -f --show $DM/metadata)
# the tools open with O_DIRECT, which tmpfs files refuse: use the loop device
echo "@@ thin_check rc=$(thin_check "$META" > /tmp/thin_check.txt 2>&1; echo $?) $(tr '\n' ' ' < /tmp/thin_check.txt)"
echo "@@ thin_ls $(thin_ls --no-headers -o DEV "$META" | tr -s ' \n' ' ')"
SECTORS=$(( $(blockdev --getsize64 $DATA) / 512 ))
POOL=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).pool.name)' "$ENGINE")
TABLE="0 $SECTORS thin-pool $META $DATA 128 32768 1 skip_block_zeroing"     # Docker's own pool table
dmsetup create "$POOL" --table "$TABLE"
echo "@@ pool $POOL $(dmsetup table "$POOL")"
# "<DeviceName> <DeviceId> <DeviceSize> <container name> <file path>" for each container
node -e '
  const e = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  for (const c of e.containers) { const d = c.graphDriver.Data; console.log(d.DeviceName, d.DeviceId, d.DeviceSize, c.name, c.file.path); }' \
  "$ENGINE" > /tmp/devices.txt
hash_device() { # DEVNAME ID SIZE NAME PATH
  dmsetup create "$1" --readonly --table "0 $(($3 / 512)) thin /dev/mapper/$POOL $2"
  echo "@@ sha256 $4 $(blockdev --getsize64 /dev/mapper/$1) $(dd if=/dev/mapper/$1 bs=1M status=none | sha256sum | cut -d' ' -f1)"
}
export -f hash_device; export POOL
xargs -P "${HASH_PARALLEL:-2}" -L 1 bash -c 'hash_device "$@"' _ < /tmp/devices.txt
FS=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).fs)' "$ENGINE")
while read -r dev id size name path; do
  echo "@@ attr $name $(dmsetup info -c --noheadings -o attr "$dev")"
  mkdir -p /mnt/$name
  if [ "$FS" = xfs ]; then mount -t xfs -o ro,norecovery /dev/mapper/$dev /mnt/$name
  else mount -t ext4 -o ro,noload /dev/mapper/$dev /mnt/$name; fi
  echo "@@ id $name $(cat /mnt/$name/id)"
  echo "@@ file $name $(base64 -w0 < /mnt/$name/rootfs$path)"
  umount /mnt/$name
  dmsetup remove "$dev"
done < /tmp/devices.txt
dmsetup remove "$POOL"; losetup -d "$DATA" "$META"
echo "@@ done"
