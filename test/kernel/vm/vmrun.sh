#!/bin/bash
# vmrun.sh — run a script inside a fresh, throw-away QEMU guest (TCG) that boots the host's
# Debian kernel (dm-thin-pool, loop, xfs, ext4 as modules) with the HOST root filesystem
# shared read-only over virtio-9p (+ tmpfs overlay: writable, discarded at poweroff).
#
# usage: vmrun.sh [-m MEM_MB] [-c CPUS] [-t TIMEOUT_S] [-s SCRATCH_DIR] [-e NAME=VALUE]... [-k] [-v]
#                 (-f SCRIPT [-- ARGS...] | -- CMD [ARGS...])
#   -s  host dir shared writable at /scratch in the guest; the command runs with cwd /scratch.
#       Without -s a fresh one is made under $DMI_VMLAB/runs/ and removed afterwards
#       (unless -k / DMI_VM_KEEP=1: then it is kept and its path printed on stderr).
#   -e  environment variable for the guest command (repeatable)
#   -k  keep the scratch dir (same as DMI_VM_KEEP=1)
#   -v  stream the serial console (kernel messages + command output) to stderr while running
# The guest command's stdout/stderr come back on our stdout/stderr and its exit code is ours.
# Exit 125: the guest never reported an exit code (boot failure, timeout, missing package...);
# the reason, qemu's stderr and the console tail are printed on stderr. On any non-zero exit
# the console tail is printed too. The raw files stay in SCRATCH/.vmrun/ (stdout, stderr, rc,
# console.log, qemu.err, timing) when the scratch dir is kept.
#
# TCG only: KVM does not boot on the hosts this was written for (nested PVM), so it is not tried.
# One VM at a time: runs are serialised with flock on $DMI_VMLAB/vm.lock.
# env: DMI_VMLAB (default /tmp/dminspect-vmlab), DMI_KVER (kernel version), DMI_VM_KEEP,
#      DMI_VM_VERBOSE=1 (= -v), DMI_VM_APPEND (extra kernel command line)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VMLAB=${DMI_VMLAB:-/tmp/dminspect-vmlab}
MEM=2048 CPUS=2 SCRATCH="" TMO=900 VERBOSE=${DMI_VM_VERBOSE:-0} SCRIPT="" KEEP=${DMI_VM_KEEP:-0}
ENVS=()
while getopts m:c:s:t:f:e:kv o; do case $o in
  m) MEM=$OPTARG;; c) CPUS=$OPTARG;; s) SCRATCH=$OPTARG;; t) TMO=$OPTARG;;
  f) SCRIPT=$OPTARG;; e) ENVS+=("$OPTARG");; k) KEEP=1;; v) VERBOSE=1;;
  *) echo "usage: vmrun.sh [-m MB] [-c CPUS] [-t SEC] [-s DIR] [-e N=V]... [-k] [-v] (-f SCRIPT [-- ARGS] | -- CMD...)" >&2; exit 2;; esac; done
shift $((OPTIND-1)); [ "${1:-}" = -- ] && shift

fail() { echo "vmrun: $*" >&2; exit 125; }
export PATH=$PATH:/usr/sbin:/sbin   # modprobe, losetup... live in sbin

# ---- preflight: name exactly what is missing --------------------------------------------------
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 not found (apt-get install qemu-system-x86; or run test/kernel/vm/setup-host.sh)"
command -v timeout >/dev/null || fail "timeout not found (coreutils)"
command -v flock >/dev/null || fail "flock not found (util-linux)"
if [ -z "${DMI_KVER:-}" ]; then
  for v in $(ls /lib/modules 2>/dev/null | sort -rV); do [ -r "/boot/vmlinuz-$v" ] && { DMI_KVER=$v; break; }; done
fi
KVER=${DMI_KVER:-}
[ -n "$KVER" ] || fail "no kernel: need a readable /boot/vmlinuz-<v> with /lib/modules/<v> (apt-get install linux-image-amd64)"
KERNEL=/boot/vmlinuz-$KVER
[ -r "$KERNEL" ] || fail "kernel $KERNEL missing or unreadable (apt-get install linux-image-amd64)"
ls /lib/modules/$KVER/kernel/drivers/md/dm-thin-pool.ko* >/dev/null 2>&1 \
  || fail "kernel $KVER has no dm-thin-pool module under /lib/modules/$KVER (apt-get install linux-image-amd64)"
mkdir -p "$VMLAB" || fail "cannot create work dir $VMLAB"
INITRD=$("$HERE/build-initramfs.sh") || fail "could not build the initramfs (see above)"

if [ -n "$SCRIPT" ]; then [ -r "$SCRIPT" ] || fail "script $SCRIPT not readable"
elif [ $# -eq 0 ]; then echo "vmrun: nothing to run (-f SCRIPT or -- CMD)" >&2; exit 2; fi

OWN_SCRATCH=0
if [ -z "$SCRATCH" ]; then mkdir -p "$VMLAB/runs"; SCRATCH=$(mktemp -d "$VMLAB/runs/run.XXXXXX"); OWN_SCRATCH=1; fi
mkdir -p "$SCRATCH/.vmrun" || fail "cannot create $SCRATCH/.vmrun"
SCRATCH=$(cd "$SCRATCH" && pwd); R=$SCRATCH/.vmrun
rm -f "$R"/{rc,stdout,stderr,console.log,qemu.err,cmd,args,env,timing}
finish() { # $1 = exit code
  if [ "$OWN_SCRATCH" = 1 ]; then
    if [ "$KEEP" = 1 ]; then echo "vmrun: kept scratch dir $SCRATCH" >&2; else rm -rf "$SCRATCH"; fi
  elif [ "$KEEP" = 1 ]; then echo "vmrun: scratch dir $SCRATCH" >&2; fi
  exit "$1"
}

# ---- what the guest runs ----------------------------------------------------------------------
if [ -n "$SCRIPT" ]; then cp "$SCRIPT" "$R/cmd"; : > "$R/args"; for a in "$@"; do printf '%q ' "$a" >> "$R/args"; done
else printf '%q ' "$@" > "$R/cmd"; echo >> "$R/cmd"; : > "$R/args"; fi
# the guest scripts' shared functions (test/kernel/guest/lib.sh), seen in the guest at the same path
printf 'export GUEST_LIB=%q\n' "$(cd "$HERE/../guest" && pwd)/lib.sh" > "$R/env"
for e in "${ENVS[@]}"; do
  case $e in *=*) printf 'export %s=%q\n' "${e%%=*}" "${e#*=}" >> "$R/env";; *) echo "vmrun: -e wants NAME=VALUE, got $e" >&2; finish 2;; esac
done
cat > "$R/stage2" <<'S2'
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8
# no udevd in the guest: libdevmapper (dmsetup, dockerd) creates the /dev/mapper/* nodes itself
export DM_DISABLE_UDEV=1
# /tmp stays the overlay's (host /tmp read-only below, writes in the guest's tmpfs upper layer): a checkout
# under the host's /tmp (CI clones, scratch copies) must stay visible at the same path in the guest
mount -t tmpfs -o mode=755 run /run
mkdir -p /dev/pts /dev/shm; mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts; mount -t tmpfs shm /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
ln -sf /proc/self/fd /dev/fd 2>/dev/null
hostname vmguest; ip link set lo up 2>/dev/null
echo "vmrun: guest up at $(cut -d' ' -f1 /proc/uptime)s uptime"
R=/scratch/.vmrun; cd /scratch
. "$R/env"
mkfifo /tmp/.o /tmp/.e
tee "$R/stdout" < /tmp/.o & t1=$!
tee "$R/stderr" < /tmp/.e >&2 & t2=$!
eval "bash \"$R/cmd\" $(cat "$R/args")" > /tmp/.o 2> /tmp/.e < /dev/null; rc=$?
for i in $(seq 50); do kill -0 $t1 $t2 2>/dev/null || break; sleep 0.1; done
kill $t1 $t2 2>/dev/null
echo $rc > "$R/rc"; sync
echo "vmrun: command exited rc=$rc at $(cut -d' ' -f1 /proc/uptime)s uptime, powering off"
exec /bin/busybox poweroff -f
S2
chmod +x "$R/stage2" "$R/cmd"

# ---- boot (one VM at a time on this host) -----------------------------------------------------
exec 9> "$VMLAB/vm.lock"
if ! flock -n 9; then echo "vmrun: another VM is running; waiting for $VMLAB/vm.lock" >&2; flock 9; fi
T0=$(date +%s%N)
: > "$R/console.log"
if [ "$VERBOSE" = 1 ]; then tail -n +1 -F "$R/console.log" 2>/dev/null >&2 & TAILPID=$!; fi
timeout -k 5 "$TMO" qemu-system-x86_64 -nodefaults -no-user-config -M q35 -accel tcg,thread=multi -cpu max \
  -smp "$CPUS" -m "$MEM" -display none -no-reboot -nic none \
  -kernel "$KERNEL" -initrd "$INITRD" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init ${DMI_VM_APPEND:-}" \
  -chardev file,id=ser0,path="$R/console.log" -serial chardev:ser0 \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$SCRATCH",mount_tag=scratch,security_model=none,multidevs=remap \
  < /dev/null 2> "$R/qemu.err"
QRC=$?
T1=$(date +%s%N)
exec 9>&-
[ -n "${TAILPID:-}" ] && { sleep 0.2; kill "$TAILPID" 2>/dev/null; wait "$TAILPID" 2>/dev/null; }
WALL=$(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.2f", (b-a)/1e9}')
echo "$WALL" > "$R/timing"
echo "vmrun: tcg wall=${WALL}s" >&2

if [ ! -s "$R/rc" ]; then
  if [ $QRC = 124 ] || [ $QRC = 137 ]; then echo "vmrun: guest timed out after ${TMO}s (qemu killed)" >&2
  else echo "vmrun: guest reported no exit code (qemu rc=$QRC)" >&2; fi
  [ -s "$R/qemu.err" ] && { echo "--- qemu stderr" >&2; cat "$R/qemu.err" >&2; }
  echo "--- guest console tail" >&2; tail -40 "$R/console.log" >&2
  [ -s "$R/stdout" ] && cat "$R/stdout"; [ -s "$R/stderr" ] && cat "$R/stderr" >&2
  finish 125
fi
RC=$(cat "$R/rc")
cat "$R/stdout"; cat "$R/stderr" >&2
if [ "$RC" != 0 ]; then
  echo "vmrun: guest command exited $RC; guest console tail:" >&2; tail -25 "$R/console.log" >&2
fi
finish "$RC"
