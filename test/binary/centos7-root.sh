#!/usr/bin/env bash
# centos7-root.sh DIR: a CentOS-7-like userspace in DIR (must be empty or absent), with no Node.js:
#   - /lib, /lib64: the glibc 2.17 / libstdc++ 6.0.19 / libgcc_s of CentOS 7, from the sysroot in the npm package
#     @napi-rs/cross-toolchain-x64-target-x86_64 (a devDependency);
#   - /bin/busybox and its applets (Debian's busybox-static), /bin/sh;
#   - empty /proc, /dev, /tmp, /data for the caller to mount and fill.
set -euo pipefail
dir=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
pkg=$repo/node_modules/@napi-rs/cross-toolchain-x64-target-x86_64/x86_64-unknown-linux-gnu.tar.xz
[[ -f $pkg ]] || { echo "centos7-root: $pkg missing (npm ci installs @napi-rs/cross-toolchain-x64-target-x86_64)" >&2; exit 2; }
busybox=/bin/busybox # Debian's busybox-static (the dynamic busybox package installs the same path: the chroot run fails then)
[[ -x $busybox ]] || { echo "centos7-root: no $busybox (apt-get install busybox-static)" >&2; exit 2; }

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
xz -dc "$pkg" | tar -x -C "$tmp" --wildcards './x86_64-unknown-linux-gnu/sysroot/lib/*' './x86_64-unknown-linux-gnu/sysroot/lib64'
sys=$tmp/x86_64-unknown-linux-gnu/sysroot
mkdir -p "$dir/lib" "$dir/bin" "$dir/usr/bin" "$dir/usr/local/bin" "$dir/proc" "$dir/dev" "$dir/tmp" "$dir/data" "$dir/etc"
# the run-time pieces only: the loader, libc and friends, libstdc++ and libgcc_s (no static archives, no gdb scripts)
for f in "$sys"/lib/*.so*; do
  case $f in *-gdb.py) continue ;; esac
  cp -a "$f" "$dir/lib/"
done
ln -sfn lib "$dir/lib64"
chmod 1777 "$dir/tmp"
cp "$busybox" "$dir/bin/busybox"
for a in sh ls cat sha256sum env id uname mkdir rm stat wc head; do ln -sf busybox "$dir/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/etc/passwd"
echo 'root:x:0:' > "$dir/etc/group"
