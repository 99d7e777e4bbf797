/** Filesystem type by magic, as Docker's mount.go ProbeFsType does, and the read-only mount options for it. */
import * as fs from 'node:fs';
import { DmiError, fsError } from '../errors.js';

export type FsType = 'xfs' | 'ext4' | 'btrfs';

/** xfs `XFSB` at 0, ext2/3/4 0xEF53 at 0x438, btrfs `_BHRfS_M` at 0x10040. */
export function probeFsBuffer(buf: Buffer): FsType | null {
  if (buf.length >= 4 && buf.toString('latin1', 0, 4) === 'XFSB') return 'xfs';
  if (buf.length >= 0x43a && buf[0x438] === 0x53 && buf[0x439] === 0xef) return 'ext4';
  if (buf.length >= 0x10048 && buf.toString('latin1', 0x10040, 0x10048) === '_BHRfS_M') return 'btrfs';
  return null;
}

export const PROBE_BYTES = 0x10048;

/** Reads the first bytes of a file or block device read-only and probes them. */
export function probeFs(path: string): FsType | null {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw fsError(e, path);
  }
  try {
    const buf = Buffer.alloc(PROBE_BYTES);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return probeFsBuffer(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Options that mount without writing: xfs `ro,norecovery,nouuid` (no log replay; a snapshot shares its
 * origin's UUID), ext4 `ro,noload` (no journal replay), btrfs `ro,nologreplay`.
 */
export function readOnlyMountOptions(type: FsType): string {
  switch (type) {
    case 'xfs':
      return 'ro,norecovery,nouuid';
    case 'ext4':
      return 'ro,noload';
    case 'btrfs':
      return 'ro,nologreplay';
  }
}

export function requireFs(type: FsType | null, what: string): FsType {
  if (type === null)
    throw new DmiError('UNSUPPORTED', `${what}: no xfs, ext4 or btrfs filesystem found (unknown magic)`);
  return type;
}
