/**
 * The stale-node scan (src/thin/stale.ts) on real bytes written by thin_restore. thin_restore never leaves stale
 * nodes, so they are made from real nodes: pool A (devices 1 and 2) and pool B (device 2 only) are restored, and
 * every btree node of A whose block is free in B is copied into B at the same block (a real-bytes construction of
 * what the kernel leaves behind after `delete 1`; kernel-written pools are tested on fixtures/captures/deleted-raw
 * and in the VM). Then hostile variants: a corrupt stale node, a stale tree with a cycle, a stale top-level entry
 * naming a live device.
 */
import * as fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { DmiError } from '../../src/errors.js';
import { openPool } from '../../src/thin/index.js';
import { blockChecksum } from '../../src/thin/checksum.js';
import {
  BLOCK_FREE,
  BLOCK_REUSED,
  BLOCK_SHARED,
  buildLiveIndex,
  classifyBlocks,
  classifyNode,
  lineageCompare,
  metadataAllocated,
  NODE_NONE,
  scanStale,
  versionRuns,
} from '../../src/thin/stale.js';
import {
  hasThinTools,
  readBlock,
  removeTmp,
  restore,
  run,
  SKIP_MESSAGE,
  writeBlock,
  type DeviceSpec,
} from './helpers.js';

const dev2: DeviceSpec = { id: 2, transaction: 1, mappings: [{ v: 0, d: 0, len: 300 }] };
// 700 single mappings: several leaves under an internal root
const dev1: DeviceSpec = {
  id: 1,
  transaction: 2,
  creationTime: 0,
  mappings: Array.from({ length: 700 }, (_, i) => ({ v: i * 2, d: 300 + i })),
};

/** Pool B with A's nodes copied into B's free blocks. Returns the file and the blocks copied. */
function staleConstruction(
  aDevices: DeviceSpec[],
  bDevices: DeviceSpec[],
  moveRoots = true,
): { file: string; copied: number[] } {
  const a = restore({ time: 1, transaction: 3, devices: aDevices });
  const b = restore({ time: 1, transaction: 4, devices: bDevices });
  const pb = openPool(b);
  const alloc = metadataAllocated(pb);
  pb.close();
  const copied: number[] = [];
  const n = fs.statSync(a).size / 4096;
  for (let i = 1; i < n; i++) {
    const buf = readBlock(a, i);
    if (alloc[i] === 0 && classifyNode(buf, i) !== NODE_NONE) {
      writeBlock(b, i, buf);
      copied.push(i);
    }
  }
  // A's top-level and details roots (leaves here) sit where B has its own: the kernel would have shadowed them to
  // a new block, so they are moved the same way (block number field rewritten, checksum recomputed).
  const pa = openPool(a);
  const roots = moveRoots ? [pa.superblock.dataMappingRoot, pa.superblock.deviceDetailsRoot] : [];
  pa.close();
  let to = n - 1;
  for (const r of roots) {
    if (alloc[r] === 0) continue;
    while (alloc[to] !== 0 || copied.includes(to)) to--;
    const buf = readBlock(a, r);
    buf.writeUInt32LE(to, 8);
    buf.writeUInt32LE(0, 12);
    writeBlock(b, to, buf, 'btree');
    copied.push(to--);
  }
  return { file: b, copied };
}

function freeBlock(file: string): number {
  const p = openPool(file);
  const alloc = metadataAllocated(p);
  p.close();
  for (let i = alloc.length - 1; i > 0; i--) if (alloc[i] === 0 && readBlock(file, i).every((x) => x === 0)) return i;
  throw new Error('no free block');
}

/** Writes a btree node at block `n` (checksummed). */
function writeNode(file: string, n: number, leaf: boolean, entries: [number, number][]): void {
  const b = Buffer.alloc(4096);
  b.writeUInt32LE(leaf ? 2 : 1, 4);
  b.writeUInt32LE(n, 8);
  b.writeUInt32LE(entries.length, 16);
  b.writeUInt32LE(252, 20);
  b.writeUInt32LE(8, 24);
  entries.forEach(([k, v], i) => {
    b.writeUInt32LE(k, 32 + 8 * i);
    b.writeUInt32LE(v, 32 + 8 * 252 + 8 * i);
  });
  b.writeUInt32LE(blockChecksum(b, 'btree'), 0);
  writeBlock(file, n, b);
}

describe.skipIf(!hasThinTools)('stale metadata scan (thin_restore + copied nodes)', () => {
  afterAll(removeTmp);
  if (!hasThinTools) console.warn(SKIP_MESSAGE);

  it('finds the deleted device 1, not the live device 2, with its exact mappings', () => {
    const { file, copied } = staleConstruction([dev2, dev1], [dev2]);
    expect(copied.length).toBeGreaterThan(3);
    run('thin_check', [file]); // the live pool is untouched by the copied free blocks
    const pool = openPool(file);
    try {
      const r = scanStale(pool);
      expect(r.liveDeviceIds).toEqual([2]);
      expect(r.devices.map((d) => d.devId)).toEqual([1]);
      const d = r.devices[0]!;
      expect(d.versions).toHaveLength(1);
      const v = d.versions[0]!;
      expect(v.newest).toBe(true);
      expect(v.mappedBlocks).toBe(700);
      expect(Array.from(v.mappings.vblocks)).toEqual(dev1.mappings.map((m) => m.v));
      expect(Array.from(v.mappings.dblocks)).toEqual(dev1.mappings.map((m) => m.d));
      expect(v.highestVblock).toBe(1398);
      expect(v.allFree).toBe(true);
      expect(d.details).toEqual([
        { devId: 1, mappedBlocks: 700, transactionId: 2, creationTime: 0, snapshottedTime: 0 },
      ]);
      expect([...versionRuns(v.mappings)]).toHaveLength(700);
      expect(r.freeBtreeNodes).toBe(copied.length);
      // data blocks 300.. are free in B: all free
      const idx = buildLiveIndex(pool, r.devices);
      const s = classifyBlocks(v, 0, idx);
      expect([s.free, s.shared, s.reused]).toEqual([700, 0, 0]);
    } finally {
      pool.close();
    }
  });

  it('shared vs reused: a live device mapping the same provisioning is shared, a new owner is reused', () => {
    // A: dev 1 is a snapshot of dev 2 (creation time 1 > block time 0: it inherited v0..99 → d0..99) plus its own
    // blocks at time 1. B: dev 2 as before, and dev 3 (new, time 1) owns data blocks 400..409 at v 0..9.
    const snap: DeviceSpec = {
      id: 1,
      transaction: 2,
      creationTime: 1,
      snapTime: 1,
      mappings: [
        { v: 0, d: 0, len: 100, time: 0 },
        { v: 200, d: 400, len: 20, time: 1 },
      ],
    };
    const dev3: DeviceSpec = { id: 3, transaction: 3, creationTime: 1, mappings: [{ v: 0, d: 400, len: 10, time: 1 }] };
    // device 5 (deleted too) pushes device 1's nodes past every block B uses
    const pad: DeviceSpec = {
      id: 5,
      transaction: 4,
      mappings: Array.from({ length: 600 }, (_, i) => ({ v: i * 2, d: 1000 + i })),
    };
    const { file } = staleConstruction([{ ...dev2, snapTime: 1 }, pad, snap], [{ ...dev2, snapTime: 1 }, dev3]);
    const pool = openPool(file);
    try {
      const r = scanStale(pool);
      expect(r.devices.map((d) => d.devId)).toEqual([1, 5]);
      const d = r.devices[0]!;
      const v = d.versions[0]!;
      expect(v.mappedBlocks).toBe(120);
      const idx = buildLiveIndex(pool, r.devices);
      const s = classifyBlocks(v, d.details[0]!.creationTime, idx);
      expect([s.shared, s.reused, s.free]).toEqual([100, 10, 10]);
      for (let i = 0; i < v.mappedBlocks; i++) {
        const dblock = v.mappings.dblocks[i]!;
        expect(s.states[i]).toBe(dblock < 100 ? BLOCK_SHARED : dblock < 410 ? BLOCK_REUSED : BLOCK_FREE);
      }
      // without a details record the inherited blocks still count as shared only if the live side inherited them
      const unknown = classifyBlocks(v, null, idx);
      expect(unknown.shared).toBe(0);
      expect(unknown.reused).toBe(110);
    } finally {
      pool.close();
    }
  });

  it('a stale tree whose top-level entry is gone is listed as unattributed (device id unknown)', () => {
    const { file } = staleConstruction([dev2, dev1], [dev2], false);
    const pool = openPool(file);
    try {
      const r = scanStale(pool);
      expect(r.devices).toEqual([]);
      expect(r.unattributedCount).toBe(1);
      expect(r.unattributed[0]).toMatchObject({ mappedBlocks: 700, highestVblock: 1398, highestTime: 0 });
    } finally {
      pool.close();
    }
  });

  it('orders versions by copy-on-write lineage', () => {
    const a = {
      vblocks: Float64Array.from([0, 1, 2]),
      dblocks: Float64Array.from([10, 11, 12]),
      times: Uint32Array.from([0, 0, 0]),
    };
    const added = {
      vblocks: Float64Array.from([0, 1, 2, 3]),
      dblocks: Float64Array.from([10, 11, 12, 13]),
      times: Uint32Array.from([0, 0, 0, 0]),
    };
    const cow = {
      vblocks: Float64Array.from([0, 1, 2]),
      dblocks: Float64Array.from([10, 20, 12]),
      times: Uint32Array.from([0, 2, 0]),
    };
    expect(lineageCompare(a, added)).toBe(1);
    expect(lineageCompare(added, a)).toBe(-1);
    expect(lineageCompare(a, cow)).toBe(1);
    expect(lineageCompare(cow, a)).toBe(-1);
    expect(lineageCompare(a, a)).toBe(0);
  });

  it('hostile stale nodes: a cycle is rejected with a reason, a live id is never listed, a corrupt node is skipped', () => {
    const { file, copied } = staleConstruction([dev2, dev1], [dev2]);
    const p0 = openPool(file);
    const root1 = scanStale(p0).devices[0]!.versions[0]!.root;
    p0.close();
    // a stale internal node pointing at itself, named by a stale top-level leaf for device 7
    const loop = freeBlock(file);
    writeNode(file, loop, false, [[0, loop]]);
    const top = loop - 1;
    expect(readBlock(file, top).every((x) => x === 0)).toBe(true);
    // the same leaf names live device 2 with device 1's old root: must not list device 2
    writeNode(file, top, true, [
      [2, root1],
      [7, loop],
    ]);
    // corrupt one of device 1's stale leaves (a byte flipped: the checksum no longer matches)
    const rootNode = readBlock(file, root1);
    expect(rootNode.readUInt32LE(4)).toBe(1); // internal: 700 mappings need several leaves
    const victim = rootNode.readUInt32LE(32 + 8 * 252); // its first child, a leaf
    expect(copied).toContain(victim);
    const vb = readBlock(file, victim);
    vb.writeUInt8(vb.readUInt8(100) ^ 0xff, 100);
    writeBlock(file, victim, vb);
    const pool = openPool(file);
    try {
      const r = scanStale(pool);
      expect(r.devices.map((d) => d.devId)).toEqual([1, 7]);
      const d1 = r.devices[0]!;
      expect(d1.versions).toHaveLength(0);
      expect(d1.rejected[0]!.reason).toMatch(/not a valid btree node/);
      const d7 = r.devices[1]!;
      expect(d7.versions).toHaveLength(0);
      expect(d7.rejected[0]!.reason).toMatch(/cycle/);
    } finally {
      pool.close();
    }
  });

  it('a walk budget bounds hostile fan-out, and reports truncation', () => {
    const { file } = staleConstruction([dev2, dev1], [dev2]);
    const pool = openPool(file);
    try {
      const r = scanStale(pool, { walkBudget: 2 });
      expect(r.truncated).toBe(true);
    } finally {
      pool.close();
    }
  });

  it('errors stay typed: a truncated metadata file', () => {
    const { file } = staleConstruction([dev2, dev1], [dev2]);
    fs.truncateSync(file, 64 * 1024);
    expect(() => scanStale(openPool(file))).toThrow(DmiError);
  });
});
