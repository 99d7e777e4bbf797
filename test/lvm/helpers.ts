/**
 * Real LVM disks for the tests: sparse image files attached to loop devices, written by the LVM tools
 * (pvcreate, vgcreate, lvcreate, vgcfgrestore) with activation off — this host has no device-mapper — and
 * LVM's own reports (lvs/pvs --reportformat json, vgcfgbackup) as the reference.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { calcCrc, INITIAL_CRC } from '../../src/lvm/crc.js';
import { hashFile } from '../support/cli.js';
import { tool } from '../support/tools.js';
import { tmpGroup } from '../support/cli.js';

const which = (bin: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${bin}`], {
    stdio: 'ignore',
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
  }).status === 0;

export const isRoot = process.getuid?.() === 0;
export const hasSfdisk = tool(which('sfdisk'), 'sfdisk (fdisk) is not installed');
export const hasLvm = tool(
  isRoot &&
    which('pvcreate') &&
    which('losetup') &&
    (() => {
      const f = path.join(os.tmpdir(), `dminspect-loopcheck-${process.pid}`);
      fs.writeFileSync(f, Buffer.alloc(1 << 20));
      const r = spawnSync('losetup', ['-f', '--show', f], { encoding: 'utf8' });
      if (r.status === 0) spawnSync('losetup', ['-d', r.stdout.trim()]);
      fs.rmSync(f, { force: true });
      return r.status === 0;
    })(),
  'the LVM disk tests need root, lvm2 (pvcreate…) and loop devices',
);
export const LVM_SKIP = 'LVM tests on real disks need root, lvm2 (pvcreate…) and loop devices: skipped';

const ENV = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin`, LVM_SUPPRESS_FD_WARNINGS: '1' };

export function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: ENV, input, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

const scratch = tmpGroup('dminspect-lvm-');
/** A fresh directory under one per-process root (removeTmp() deletes it all). */
export const tmp = scratch.dir;
export const removeTmp = scratch.remove;

export function sparse(file: string, bytes: number): string {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, bytes);
  return file;
}

/** sha256 of a file, streamed (disk images are larger than a Buffer may be). */
export const sha256 = hashFile;

/** Loop devices attached by the tests; detach them all with detachAll(). */
const attached: string[] = [];

/** Attaches `file` (optionally a byte range of it: a partition) to a free loop device. */
export function attach(file: string, range?: { offset: number; size: number }): string {
  const args = ['-f', '--show'];
  if (range) args.push('-o', String(range.offset), '--sizelimit', String(range.size));
  const dev = sh('losetup', [...args, file]).trim();
  attached.push(dev);
  return dev;
}

export function detachAll(): void {
  while (attached.length) spawnSync('losetup', ['-d', attached.pop()!]);
}

/** --config for LVM commands that see only `devs`, never touch device-mapper, udev or /etc/lvm/{backup,archive}. */
export function lvmConfig(devs: string[]): string {
  const accept = devs.map((d) => `"a|^${d}$|"`).join(',');
  return `devices{filter=[${accept},"r|.*|"] global_filter=[${accept},"r|.*|"] obtain_device_list_from_udev=0 use_devicesfile=0 scan=["/dev"]} activation{udev_sync=0 udev_rules=0 monitoring=0} global{activation=0} backup{backup=0 archive=0}`;
}

export function lvm(devs: string[], cmd: string, ...args: string[]): string {
  return sh(cmd, ['--config', lvmConfig(devs), ...args]);
}

/** lvs -a as JSON rows (sizes in bytes). */
export function lvsJson(devs: string[], vg: string, fields: string): Record<string, string>[] {
  const out = lvm(devs, 'lvs', '-a', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', fields, vg);
  return JSON.parse(out).report[0].lv;
}

export function pvsJson(devs: string[], fields: string): Record<string, string>[] {
  const out = lvm(devs, 'pvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', fields);
  return JSON.parse(out).report[0].pv;
}

export function vgBackup(devs: string[], vg: string): string {
  const f = path.join(tmp(), `${vg}.vg`);
  lvm(devs, 'vgcfgbackup', '-f', f, vg);
  return fs.readFileSync(f, 'utf8');
}

export interface LvSpec {
  name: string;
  visible?: boolean;
  /** Segment bodies (start_extent is computed): `type = ...` lines etc. */
  segments: { extents: number; body: string }[];
}

let uuidN = 0;
function fakeUuid(): string {
  const s = (++uuidN).toString().padStart(6, '0');
  return `Test${s.slice(0, 2)}-${s.slice(2, 6)}-aaaa-bbbb-cccc-dddd-eeeeee`;
}

/** Replaces the `logical_volumes` section of a vgcfgbackup text with `lvs`. */
export function withLvs(backup: string, lvs: LvSpec[]): string {
  const i = backup.indexOf('\tlogical_volumes {');
  const end = backup.lastIndexOf('\n}');
  const head = i >= 0 ? backup.slice(0, i) : backup.slice(0, end);
  const body = lvs.map((lv) => {
    let start = 0;
    const segs = lv.segments.map((s, k) => {
      const t = `\t\t\tsegment${k + 1} {\n\t\t\t\tstart_extent = ${start}\n\t\t\t\textent_count = ${s.extents}\n${s.body
        .trim()
        .split('\n')
        .map((l) => `\t\t\t\t${l.trim()}`)
        .join('\n')}\n\t\t\t}`;
      start += s.extents;
      return t;
    });
    return `\t\t${lv.name} {\n\t\t\tid = "${fakeUuid()}"\n\t\t\tstatus = ["READ", "WRITE"${lv.visible === false ? '' : ', "VISIBLE"'}]\n\t\t\tflags = []\n\t\t\tsegment_count = ${lv.segments.length}\n${segs.join('\n')}\n\t\t}`;
  });
  return `${head}\tlogical_volumes {\n${body.join('\n')}\n\t}\n}\n`;
}

/** Writes VG text with vgcfgrestore --force (LVM itself writes the on-disk format). */
export function restoreVg(devs: string[], vg: string, text: string): void {
  const f = path.join(tmp(), `${vg}.vg`);
  fs.writeFileSync(f, text);
  lvm(devs, 'vgcfgrestore', '--force', '-f', f, vg);
}

export const linear = (pv: string, extent: number): string =>
  `type = "striped"\nstripe_count = 1\nstripes = ["${pv}", ${extent}]`;

/**
 * Test-only writer: replaces the committed text of the metadata area at PV byte `mdaStart` (PV at image byte
 * `pvStart`) with `text`, in place, fixing raw_locn 0 and the header checksum unless told not to.
 */
export function rewriteMetadata(
  image: string,
  pvStart: number,
  mdaStart: number,
  text: string | Buffer,
  opts: { fixTextChecksum?: boolean } = {},
): void {
  const fd = fs.openSync(image, 'r+');
  try {
    const hdr = Buffer.alloc(512);
    fs.readSync(fd, hdr, 0, 512, pvStart + mdaStart);
    const off = Number(hdr.readBigUInt64LE(40));
    const bytes = Buffer.concat([Buffer.isBuffer(text) ? text : Buffer.from(text), Buffer.from([0])]);
    fs.writeSync(fd, bytes, 0, bytes.length, pvStart + mdaStart + off);
    hdr.writeBigUInt64LE(BigInt(bytes.length), 48);
    if (opts.fixTextChecksum !== false) hdr.writeUInt32LE(calcCrc(INITIAL_CRC, bytes), 56);
    hdr.writeUInt32LE(calcCrc(INITIAL_CRC, hdr.subarray(4)), 0);
    fs.writeSync(fd, hdr, 0, 512, pvStart + mdaStart);
  } finally {
    fs.closeSync(fd);
  }
}

/** Flips one byte of `file` at `offset`. */
export function flip(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, offset);
  b[0] = b[0]! ^ 0x5a;
  fs.writeSync(fd, b, 0, 1, offset);
  fs.closeSync(fd);
}

/** dd: copies `src` into `dst` at byte `at` (no truncation). */
export function writeAt(dst: string, at: number, data: Buffer): void {
  const fd = fs.openSync(dst, 'r+');
  fs.writeSync(fd, data, 0, data.length, at);
  fs.closeSync(fd);
}
