#!/bin/bash
# Runs INSIDE a vmrun.sh guest. The classic dm-thin walkthrough: a pool on two sparse loop
# files, create_thin, mkfs, write a file, suspend / create_snap / resume, mount the snapshot
# read-only, compare. Then change the origin and show the snapshot kept the old content.
# Lines starting with "@@ " are meant for the test to parse.
# env: MARKER (text written into the file), FS (ext4|xfs, default ext4)
set -euo pipefail
MARKER=${MARKER:-hello from thin device 0}
FS=${FS:-ext4}
modprobe loop; modprobe dm-thin-pool; modprobe "$FS"
echo "@@ driver $(dmsetup version | sed -n 's/^Driver version: *//p')"
echo "@@ targets $(dmsetup targets | awk '$1 ~ /^thin/ {printf "%s %s; ", $1, $2}')"
W=/tmp/thin; mkdir -p $W; cd $W              # guest tmpfs: sparse files cost nothing
truncate -s 1G data.img                      # 2097152 sectors
truncate -s 16M metadata.img
DATA=$(losetup -f --show data.img); META=$(losetup -f --show metadata.img)
dd if=/dev/zero of="$META" bs=4096 count=1 status=none   # a zeroed superblock = format new metadata
# start len thin-pool metadev datadev data_block_size(sectors) low_water_mark(blocks) #features features
dmsetup create pool --table "0 2097152 thin-pool $META $DATA 128 1024 1 skip_block_zeroing"
dmsetup message /dev/mapper/pool 0 "create_thin 0"
dmsetup create thin --table "0 524288 thin /dev/mapper/pool 0"     # 256 MiB thin volume, dev_id 0
if [ "$FS" = xfs ]; then mkfs.xfs -q /dev/mapper/thin; else mkfs.ext4 -q /dev/mapper/thin; fi
mkdir -p /mnt/thin /mnt/snap
mount /dev/mapper/thin /mnt/thin
printf '%s\n' "$MARKER" > /mnt/thin/hello.txt
sync
# snapshot of an ACTIVE origin: suspend it around create_snap (kernel documentation)
dmsetup suspend /dev/mapper/thin
dmsetup message /dev/mapper/pool 0 "create_snap 1 0"
dmsetup resume /dev/mapper/thin
dmsetup create snap --readonly --table "0 524288 thin /dev/mapper/pool 1"
# the origin is still mounted: ext4 needs noload (no journal replay), xfs norecovery+nouuid
if [ "$FS" = xfs ]; then mount -o ro,norecovery,nouuid /dev/mapper/snap /mnt/snap
else mount -o ro,noload /dev/mapper/snap /mnt/snap; fi
echo "@@ origin $(sha256sum < /mnt/thin/hello.txt | cut -d' ' -f1) $(cat /mnt/thin/hello.txt)"
echo "@@ snap $(sha256sum < /mnt/snap/hello.txt | cut -d' ' -f1) $(cat /mnt/snap/hello.txt)"
cmp /mnt/thin/hello.txt /mnt/snap/hello.txt && echo "@@ cmp equal"
# copy-on-write: overwrite the origin, the snapshot keeps the old bytes
echo "changed after the snapshot" > /mnt/thin/hello.txt; sync
echo "@@ origin-after $(cat /mnt/thin/hello.txt)"
echo "@@ snap-after $(cat /mnt/snap/hello.txt)"
echo "@@ table-pool $(dmsetup table pool)"
echo "@@ status-pool $(dmsetup status pool)"
echo "@@ table-snap $(dmsetup table snap)"
echo "@@ info-snap $(dmsetup info -c --noheadings -o name,attr snap)"
dmsetup message /dev/mapper/pool 0 reserve_metadata_snap
echo "@@ thin_ls $(thin_ls --metadata-snap --no-headers -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS "$META" | tr -s ' ' | paste -sd';')"
dmsetup message /dev/mapper/pool 0 release_metadata_snap
umount /mnt/snap /mnt/thin
dmsetup remove snap; dmsetup remove thin; dmsetup remove pool
losetup -d "$DATA" "$META"
echo "@@ node $(node -e 'process.stdout.write(process.version + " " + require("os").release())')"
echo "@@ done"
