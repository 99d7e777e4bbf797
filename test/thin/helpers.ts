/**
 * Test helpers: build pool XML, write it with thin_restore, run the thin-provisioning-tools reference
 * (thin_ls, thin_dump) and parse their output, and patch metadata blocks (re-computing checksums).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { blockChecksum, type BlockKind } from '../../src/thin/checksum.js';
import { decodeNodeHeader, u64ValueAt } from '../../src/thin/btree.js';
import type { ThinPool } from '../../src/thin/pool.js';
import { tool } from '../support/tools.js';
import { tmpGroup } from '../support/cli.js';

export const hasThinTools = tool(
  spawnSync('thin_restore', ['-V'], { stdio: 'ignore' }).status === 0,
  'thin_restore (thin-provisioning-tools) is not installed',
);
export const SKIP_MESSAGE = 'thin_restore (thin-provisioning-tools) is not installed: skipping tests on real metadata';
if (!hasThinTools) console.warn(SKIP_MESSAGE);

export interface MappingSpec {
  v: number;
  d: number;
  /** Range length (default 1 → single_mapping). */
  len?: number;
  time?: number;
}

export interface DeviceSpec {
  id: number;
  /** Default: the number of mapped blocks. */
  mapped?: number;
  transaction?: number;
  creationTime?: number;
  snapTime?: number;
  mappings: MappingSpec[];
}

export interface PoolSpec {
  time?: number;
  transaction?: number;
  dataBlockSize?: number;
  nrDataBlocks?: number;
  devices: DeviceSpec[];
}

export function poolXml(spec: PoolSpec): string {
  const lines = [
    `<superblock uuid="" time="${spec.time ?? 1}" transaction="${spec.transaction ?? 1}" data_block_size="${spec.dataBlockSize ?? 128}" nr_data_blocks="${spec.nrDataBlocks ?? 4096}">`,
  ];
  for (const d of spec.devices) {
    const mapped = d.mapped ?? d.mappings.reduce((n, m) => n + (m.len ?? 1), 0);
    lines.push(
      `  <device dev_id="${d.id}" mapped_blocks="${mapped}" transaction="${d.transaction ?? d.id}" creation_time="${d.creationTime ?? 0}" snap_time="${d.snapTime ?? 0}">`,
    );
    for (const m of d.mappings) {
      if ((m.len ?? 1) === 1)
        lines.push(`    <single_mapping origin_block="${m.v}" data_block="${m.d}" time="${m.time ?? 0}"/>`);
      else
        lines.push(
          `    <range_mapping origin_begin="${m.v}" data_begin="${m.d}" length="${m.len}" time="${m.time ?? 0}"/>`,
        );
    }
    lines.push('  </device>');
  }
  lines.push('</superblock>');
  return lines.join('\n') + '\n';
}

const scratch = tmpGroup('dminspect-thin-');
/** A fresh directory under this process's thin scratch root (removeTmp() deletes it all). */
export const tmpDir = scratch.dir;
export const removeTmp = scratch.remove;

/** Writes `spec` with thin_restore into a fresh sparse file of `size` bytes; returns its path. */
export function restore(spec: PoolSpec | string, size = 4 * 1024 * 1024): string {
  const dir = tmpDir();
  const xml = path.join(dir, 'pool.xml');
  const meta = path.join(dir, 'meta.bin');
  fs.writeFileSync(xml, typeof spec === 'string' ? spec : poolXml(spec));
  fs.writeFileSync(meta, '');
  fs.truncateSync(meta, size);
  run('thin_restore', ['-i', xml, '-o', meta]);
  return meta;
}

export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

export interface LsRow {
  dev: number;
  mapped: number;
  exclusive: number;
  shared: number;
  transaction: number;
  createTime: number;
  snapTime: number;
}

/** thin_ls -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,TRANSACTION,CREATE_TIME,SNAP_TIME. */
export function thinLs(meta: string, extra: string[] = []): Map<number, LsRow> {
  const out = run('thin_ls', [
    '-o',
    'DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,TRANSACTION,CREATE_TIME,SNAP_TIME',
    '--no-headers',
    ...extra,
    meta,
  ]);
  const rows = new Map<number, LsRow>();
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length !== 7 || f.some((x) => !Number.isFinite(x))) continue;
    const [dev, mapped, exclusive, shared, transaction, createTime, snapTime] = f as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    rows.set(dev, { dev, mapped, exclusive, shared, transaction, createTime, snapTime });
  }
  return rows;
}

export interface DumpDevice {
  attrs: Record<string, string>;
  /** Expanded runs as thin_dump prints them. */
  runs: { v: number; d: number; len: number; time: number }[];
}

export interface Dump {
  superblock: Record<string, string>;
  devices: Map<number, DumpDevice>;
}

function attrs(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of s.matchAll(/(\w+)="([^"]*)"/g)) out[m[1]!] = m[2]!;
  return out;
}

export function thinDump(meta: string, extra: string[] = []): Dump {
  const out = run('thin_dump', [...extra, meta]);
  let superblock: Record<string, string> = {};
  const devices = new Map<number, DumpDevice>();
  let cur: DumpDevice | null = null;
  for (const line of out.split('\n')) {
    const t = line.trim();
    if (t.startsWith('<superblock')) superblock = attrs(t);
    else if (t.startsWith('<device')) {
      cur = { attrs: attrs(t), runs: [] };
      devices.set(Number(cur.attrs.dev_id), cur);
    } else if (t.startsWith('<range_mapping') && cur) {
      const a = attrs(t);
      cur.runs.push({
        v: Number(a.origin_begin),
        d: Number(a.data_begin),
        len: Number(a.length),
        time: Number(a.time),
      });
    } else if (t.startsWith('<single_mapping') && cur) {
      const a = attrs(t);
      cur.runs.push({ v: Number(a.origin_block), d: Number(a.data_block), len: 1, time: Number(a.time) });
    }
  }
  return { superblock, devices };
}

/** Coalesces runs the way mappingRuns() does (ignoring time). */
export function coalesce(
  runs: { v: number; d: number; len: number }[],
): { vblock: number; dblock: number; length: number }[] {
  const out: { vblock: number; dblock: number; length: number }[] = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    if (last && last.vblock + last.length === r.v && last.dblock + last.length === r.d) last.length += r.len;
    else out.push({ vblock: r.v, dblock: r.d, length: r.len });
  }
  return out;
}

export function readBlock(file: string, n: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(4096);
    fs.readSync(fd, b, 0, 4096, n * 4096);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes block `n`; with `kind`, re-computes its checksum first. */
export function writeBlock(file: string, n: number, buf: Buffer, kind?: BlockKind): void {
  if (kind) buf.writeUInt32LE(blockChecksum(buf, kind), 0);
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, buf, 0, 4096, n * 4096);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads block `n`, lets `edit` change it, writes it back (re-checksummed as `kind` unless null). */
export function patchBlock(file: string, n: number, kind: BlockKind | null, edit: (b: Buffer) => void): void {
  const b = readBlock(file, n);
  edit(b);
  writeBlock(file, n, b, kind ?? undefined);
}

export function copyFile(file: string): string {
  const dest = path.join(tmpDir(), 'copy.bin');
  fs.copyFileSync(file, dest);
  return dest;
}

/** Seeded PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A pool with multi-level bottom trees and sharing by data block: `bases` devices of `perDev`
 * scattered single mappings (several leaves + an internal root each) and snapshots that overwrite
 * some blocks.
 */
export function randomPool(seed: number, bases = 3, snaps = 4, perDev = 700): PoolSpec {
  const rnd = prng(seed);
  let next = 0;
  const devices: DeviceSpec[] = [];
  const baseMaps: MappingSpec[][] = [];
  for (let b = 0; b < bases; b++) {
    const m: MappingSpec[] = [];
    let v = 0;
    for (let i = 0; i < perDev; i++) {
      v += 1 + Math.floor(rnd() * 3);
      m.push({ v, d: next, time: 0 });
      next += 1 + Math.floor(rnd() * 2);
    }
    baseMaps.push(m);
    devices.push({ id: b + 1, creationTime: 0, snapTime: snaps, mappings: m });
  }
  for (let s = 0; s < snaps; s++) {
    const base = baseMaps[s % bases]!;
    const m = base.map((x) => (rnd() < 0.1 ? { v: x.v, d: next++, time: s + 1 } : x));
    // a few blocks beyond the base
    for (let i = 0; i < 5; i++) m.push({ v: 100000 + s * 10 + i, d: next++, time: s + 1 });
    devices.push({ id: 10 + s, creationTime: s + 1, snapTime: s + 1, mappings: m });
  }
  devices.push({ id: 99, mappings: [] });
  return { time: snaps + 1, transaction: 50, nrDataBlocks: next + 100, devices };
}

/** The child blocks of btree node `block` (none for a leaf). */
export function children(pool: ThinPool, block: number): number[] {
  const buf = pool.node(block, 'test');
  const h = decodeNodeHeader(buf, block, 'test', 8);
  if (h.isLeaf) return [];
  return Array.from({ length: h.nrEntries }, (_, i) => u64ValueAt(buf, h, i, 'test'));
}

/** Points device `devId`'s entry in the (single-leaf) top-level mapping tree at `root`: a kernel-style snapshot. */
export function setRoot(meta: string, pool: ThinPool, devId: number, root: number): void {
  const top = pool.superblock.dataMappingRoot;
  patchBlock(meta, top, 'btree', (b) => {
    const nr = b.readUInt32LE(16);
    const max = b.readUInt32LE(20);
    for (let i = 0; i < nr; i++) {
      if (b.readUInt32LE(32 + 8 * i) === devId) {
        b.writeUInt32LE(root, 32 + 8 * max + 8 * i);
        b.writeUInt32LE(0, 32 + 8 * max + 8 * i + 4);
      }
    }
  });
}
