#!/bin/bash
# setup-host.sh — install what the kernel test suite (test/kernel) needs on a Debian 12
# (bookworm) host, then build the guest initramfs. Idempotent: when every package is already
# installed it does not touch apt at all and finishes in well under a second.
#
# The guest runs the HOST's binaries over 9p, so only the host needs these packages:
#   qemu-system-x86 linux-image-amd64 busybox-static kmod cpio     - the VM itself
#   dmsetup thin-provisioning-tools xfsprogs e2fsprogs              - dm-thin, filesystems
#   docker.io containerd runc                                       - Docker 20.10 (last with devicemapper)
# /usr/sbin/policy-rc.d is made to exit 101 first, so installing docker.io/containerd starts no
# service on the host.
#
# env: DMI_SETUP_SKIP_INITRAMFS=1 to skip building the initramfs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PKGS=(qemu-system-x86 linux-image-amd64 busybox-static kmod cpio
      dmsetup thin-provisioning-tools xfsprogs e2fsprogs
      docker.io containerd runc)

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "setup-host: must run as root (or with sudo available)" >&2; exit 1; }
  SUDO="sudo"
fi

missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-host: all ${#PKGS[@]} packages already installed"
else
  echo "setup-host: installing: ${missing[*]}"
  command -v apt-get >/dev/null || { echo "setup-host: apt-get not found; this script targets Debian 12 (bookworm)" >&2; exit 1; }
  # keep docker/containerd postinst from starting services on the host
  if [ ! -x /usr/sbin/policy-rc.d ] || { /usr/sbin/policy-rc.d >/dev/null 2>&1; [ $? -ne 101 ]; }; then
    [ -e /usr/sbin/policy-rc.d ] && $SUDO cp -p /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.dminspect-saved
    printf '#!/bin/sh\n# installed by dminspect test/kernel/vm/setup-host.sh: start no services\nexit 101\n' \
      | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    echo "setup-host: /usr/sbin/policy-rc.d now exits 101"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "${DMI_SETUP_SKIP_INITRAMFS:-0}" != 1 ]; then
  "$HERE/build-initramfs.sh"
fi
