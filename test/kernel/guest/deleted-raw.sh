#!/bin/bash
# Runs INSIDE a vmrun.sh guest. A deleted thin device, for `dminspect deleted` / `export --deleted`:
#   A. a pool on two sparse loop files; thin 1 (ext4, a file written in several commits) and thin 2 (kept);
#      the kernel's sha256 of thin 1; `dmsetup message pool 0 "delete 1"`; pool torn down; both files
#      archived to $OUT/a.tar.gz (GNU tar --sparse).
#   B. the same files: the pool is loaded again (its allocators start from block 0, so the freed blocks of
#      thin 1 are handed out first) and a new thin 3 writes some data; torn down; archived to $OUT/b.tar.gz.
# Lines starting with "@@ " are meant for the test to parse.
# env: OUT (default /scratch/deleted), MARKER (text in thin 1's file)
set -euo pipefail
OUT=${OUT:-/scratch/deleted}
MARKER=${MARKER:-deleted thin device marker}
mkdir -p "$OUT"
modprobe loop; modprobe dm-thin-pool; modprobe ext4
W=/tmp/pool; mkdir -p $W; cd $W
truncate -s 128M data                        # 262144 sectors, 2048 data blocks of 64 KiB
truncate -s 4M metadata                      # 1024 metadata blocks
dd if=/dev/zero of=metadata bs=4096 count=1 conv=notrunc status=none
DATA=$(losetup -f --show data); META=$(losetup -f --show metadata)
TABLE="0 262144 thin-pool $META $DATA 128 0 1 skip_block_zeroing"
dmsetup create pool --table "$TABLE"

# ---- A: thin 1 written in several commits, thin 2 kept ------------------------------------------
dmsetup message /dev/mapper/pool 0 "create_thin 1"
dmsetup create thin1 --table "0 131072 thin /dev/mapper/pool 1"          # 64 MiB
mkfs.ext4 -q -E nodiscard,lazy_itable_init=0 /dev/mapper/thin1
mkdir -p /mnt/t1; mount -o nodiscard /dev/mapper/thin1 /mnt/t1
printf '%s\n' "$MARKER" > /mnt/t1/evidence.txt; sync
head -c 512K /dev/urandom > /mnt/t1/blob1; sync
head -c 256K /dev/urandom > /mnt/t1/blob2; sync
printf '%s (second line)\n' "$MARKER" >> /mnt/t1/evidence.txt; sync
rm /mnt/t1/blob2; head -c 128K /dev/urandom > /mnt/t1/blob3; sync
echo "@@ file-sha256 $(sha256sum < /mnt/t1/evidence.txt | cut -d' ' -f1)"
umount /mnt/t1
dmsetup message /dev/mapper/pool 0 "create_thin 2"
dmsetup create thin2 --table "0 65536 thin /dev/mapper/pool 2"           # 32 MiB
head -c 128K /dev/urandom | dd of=/dev/mapper/thin2 bs=64K oflag=direct status=none
sync
echo "@@ sha256-1 $(sha256sum < /dev/mapper/thin1 | cut -d' ' -f1)"
echo "@@ size-1 $(blockdev --getsize64 /dev/mapper/thin1)"
echo "@@ sha256-2 $(sha256sum < /dev/mapper/thin2 | cut -d' ' -f1)"
echo "@@ status-before $(dmsetup status pool)"
# the kernel's own mapping of thin 1 just before the delete, read by thin_dump from a held metadata snapshot
dmsetup message /dev/mapper/pool 0 reserve_metadata_snap
thin_dump -m --dev-id 1 "$META" > "$OUT/thin1-before-delete.xml"
dmsetup message /dev/mapper/pool 0 release_metadata_snap
dmsetup remove thin1
dmsetup message /dev/mapper/pool 0 "delete 1"
echo "@@ status-after $(dmsetup status pool)"
dmsetup remove thin2
dmsetup remove pool
sync
echo "@@ thin_ls-a $(thin_ls --no-headers -o DEV,MAPPED_BLOCKS "$META" | tr -s ' ' | paste -sd';')"
losetup -d "$DATA" "$META"
tar --sparse -C $W -czf "$OUT/a.tar.gz" metadata data
echo "@@ archived-a $(du -b "$OUT/a.tar.gz" | cut -f1)"

# ---- B: the pool again; a new thin 3 takes freed data blocks ------------------------------------
DATA=$(losetup -f --show data); META=$(losetup -f --show metadata)
TABLE="0 262144 thin-pool $META $DATA 128 0 1 skip_block_zeroing"
dmsetup create pool --table "$TABLE"
dmsetup message /dev/mapper/pool 0 "create_thin 3"
dmsetup create thin3 --table "0 65536 thin /dev/mapper/pool 3"
head -c 256K /dev/urandom | dd of=/dev/mapper/thin3 bs=64K oflag=direct status=none
sync
echo "@@ sha256-3 $(sha256sum < /dev/mapper/thin3 | cut -d' ' -f1)"
dmsetup remove thin3
dmsetup remove pool
sync
thin_dump --dev-id 3 "$META" > "$OUT/thin3-after.xml"     # the loop device: thin_dump opens with O_DIRECT (not on tmpfs)
echo "@@ thin_ls-b $(thin_ls --no-headers -o DEV,MAPPED_BLOCKS "$META" | tr -s ' ' | paste -sd';')"
losetup -d "$DATA" "$META"
tar --sparse -C $W -czf "$OUT/b.tar.gz" metadata data
echo "@@ archived-b $(du -b "$OUT/b.tar.gz" | cut -f1)"
echo "@@ done"
