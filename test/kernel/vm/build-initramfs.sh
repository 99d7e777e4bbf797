#!/bin/bash
# build-initramfs.sh — build the tiny initramfs the kernel test guests boot with.
#
# It holds a static busybox and the modules needed to reach the host root (virtio-pci,
# 9p over virtio, overlay). Its /init mounts the HOST root read-only over 9p (tag hostroot),
# puts a tmpfs overlay on top (the guest root is the host's userland, writable, thrown away
# at poweroff), mounts the writable 9p share "scratch" at /scratch and execs
# /scratch/.vmrun/stage2 (written by vmrun.sh). Every other module (dm-thin-pool, loop, xfs,
# ext4...) is loaded later by the host's own modprobe through the shared /lib/modules.
#
# usage: build-initramfs.sh [-f]      (-f: rebuild even if cached)
# env:   DMI_VMLAB  work dir (default /tmp/dminspect-vmlab)
#        DMI_KVER   kernel version (default: newest with both /boot/vmlinuz-V and /lib/modules/V)
# prints the path of the initramfs on stdout (cached per kernel version).
set -euo pipefail
VMLAB=${DMI_VMLAB:-/tmp/dminspect-vmlab}
FORCE=0; [ "${1:-}" = -f ] && FORCE=1

die() { echo "build-initramfs: $*" >&2; exit 1; }
pick_kver() {
  local v
  for v in $(ls /lib/modules 2>/dev/null | sort -rV); do
    [ -r "/boot/vmlinuz-$v" ] && { echo "$v"; return; }
  done
}
KVER=${DMI_KVER:-$(pick_kver)}
[ -n "$KVER" ] || die "no kernel: need /boot/vmlinuz-<v> and /lib/modules/<v> (apt-get install linux-image-amd64; see test/kernel/vm/setup-host.sh)"
MODDIR=/lib/modules/$KVER
[ -d "$MODDIR" ] || die "no $MODDIR (apt-get install linux-image-amd64)"
OUT=$VMLAB/initramfs-$KVER.cpio.gz
if [ $FORCE = 0 ] && [ -s "$OUT" ] && [ "$OUT" -nt "$0" ] && [ "$OUT" -nt "$MODDIR/modules.dep" ]; then
  echo "$OUT"; exit 0      # cached for this kernel version
fi
export PATH=$PATH:/usr/sbin:/sbin
command -v modprobe >/dev/null || die "modprobe not found (apt-get install kmod)"
command -v cpio >/dev/null || die "cpio not found (apt-get install cpio)"
BB=/bin/busybox
[ -x $BB ] && ! ldd $BB >/dev/null 2>&1 || die "$BB missing or not static (apt-get install busybox-static)"


mkdir -p "$VMLAB"
T=$(mktemp -d "$VMLAB/initrd.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T"/{bin,dev,proc,sys,mods,lower,upper,newroot}
cp $BB "$T/bin/busybox"
ln -s busybox "$T/bin/sh"
# load order from modprobe --show-depends (modinfo's "depends" order is not enough)
MODS="virtio_pci 9pnet_virtio 9p overlay"
: > "$T/mods/order"
for f in $(for m in $MODS; do modprobe -S "$KVER" --show-depends "$m" || die "module $m not found for $KVER"; done \
           | awk '$1=="insmod"{print $2}' | awk '!seen[$0]++'); do
  b=$(basename "$f")
  case "$b" in
    (*.xz)  xz -dc "$f" > "$T/mods/${b%.xz}"; b=${b%.xz};;
    (*.zst) zstd -qdc "$f" > "$T/mods/${b%.zst}"; b=${b%.zst};;
    (*)     cp "$f" "$T/mods/$b";;
  esac
  echo "$b" >> "$T/mods/order"
done
cat > "$T/init" <<'INIT'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m || echo "vminit: insmod $m failed"; done
P9="trans=virtio,version=9p2000.L,msize=524288"
if ! mount -t 9p -o $P9,ro,cache=loose hostroot /lower; then
  echo "vminit: cannot mount hostroot over 9p"; poweroff -f
fi
MEMUP=$(sed -n 's/.*vm.upper=\([^ ]*\).*/\1/p' /proc/cmdline); MEMUP=${MEMUP:-50%}
mount -t tmpfs -o size=$MEMUP,mode=755 upper /upper
mkdir -p /upper/u /upper/w
if ! mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w overlay /newroot; then
  echo "vminit: overlay failed, falling back to read-only 9p root"; mount --bind /lower /newroot
fi
mkdir -p /newroot/scratch 2>/dev/null
mount -t 9p -o $P9,cache=none scratch /newroot/scratch || echo "vminit: no scratch share"
for d in proc sys dev; do mount --move /$d /newroot/$d; done
exec switch_root /newroot /scratch/.vmrun/stage2
INIT
chmod 755 "$T/init"
( cd "$T" && find . -print0 | cpio --null -o -H newc --quiet ) | gzip -1 > "$OUT.tmp.$$"
mv "$OUT.tmp.$$" "$OUT"
echo "build-initramfs: built $OUT ($(du -h "$OUT" | cut -f1), kernel $KVER, modules: $(tr '\n' ' ' < "$T/mods/order"))" >&2
echo "$OUT"
