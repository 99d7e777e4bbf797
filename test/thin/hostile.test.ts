/**
 * Hostile metadata: each corruption gives a DmiError (BAD_INPUT unless noted) whose message names the
 * block; nothing hangs or grows without bound.
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DmiError } from '../../src/errors.js';
import { openPool, type ThinPool } from '../../src/thin/index.js';
import { decodeNodeHeader, u64ValueAt } from '../../src/thin/btree.js';
import { decodeMetadataIndex } from '../../src/thin/space-map.js';
import { copyFile, hasThinTools, patchBlock, randomPool, removeTmp, restore } from './helpers.js';

interface Layout {
  dataMappingRoot: number;
  detailsRoot: number;
  /** A device's internal bottom root, its children (leaves). */
  devId: number;
  root: number;
  leaves: number[];
  metaIndex: number;
  metaBitmap: number;
  dataIndexTree: number;
}

let base = '';
let layout: Layout;

function layoutOf(pool: ThinPool): Layout {
  const r = pool.mappingRoots()[0]!;
  const buf = pool.node(r.root, 't');
  const h = decodeNodeHeader(buf, r.root, 't', 8);
  expect(h.isLeaf).toBe(false);
  const sb = pool.superblock;
  const metaIndex = sb.metadataSpaceMapRoot.bitmapRoot;
  const idx = decodeMetadataIndex(pool.block(metaIndex, 'index', 't'), metaIndex, 1);
  return {
    dataMappingRoot: sb.dataMappingRoot,
    detailsRoot: sb.deviceDetailsRoot,
    devId: r.devId,
    root: r.root,
    leaves: Array.from({ length: h.nrEntries }, (_, i) => u64ValueAt(buf, h, i, 't')),
    metaIndex,
    metaBitmap: idx[0]!.blockNr,
    dataIndexTree: sb.dataSpaceMapRoot.bitmapRoot,
  };
}

/** Runs every read the pool offers. */
function readAll(meta: string): void {
  const pool = openPool(meta);
  try {
    pool.devices();
    pool.usage();
    pool.spaceMaps();
    for (const { devId } of pool.mappingRoots()) {
      for (const _run of pool.mappingRuns(devId));
      pool.highestMappedBlock(devId);
    }
  } finally {
    pool.close();
  }
}

function expectBad(meta: string, pattern: RegExp, code = 'BAD_INPUT'): DmiError {
  let err: unknown = null;
  try {
    readAll(meta);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(DmiError);
  expect((err as DmiError).code).toBe(code);
  expect((err as DmiError).message).toMatch(pattern);
  return err as DmiError;
}

/** A patched copy of the base file. */
function patched(
  block: number,
  resum: 'superblock' | 'btree' | 'bitmap' | 'index' | null,
  edit: (b: Buffer) => void,
): string {
  const meta = copyFile(base);
  patchBlock(meta, block, resum, edit);
  return meta;
}

const flip =
  (off: number) =>
  (b: Buffer): void => {
    b[off] = b[off]! ^ 0x5a;
  };

describe.skipIf(!hasThinTools)('hostile metadata', () => {
  beforeAll(() => {
    base = restore(randomPool(21, 2, 2, 600));
    const pool = openPool(base);
    layout = layoutOf(pool);
    pool.close();
    readAll(base); // the unpatched file is fine
  });
  afterAll(removeTmp);

  it('wrong magic', () => {
    expectBad(
      patched(0, 'superblock', (b) => b.writeUInt32LE(12345, 32)),
      /superblock: bad magic 12345/,
    );
  });

  it('unknown version and incompat flags are UNSUPPORTED', () => {
    expectBad(
      patched(0, 'superblock', (b) => b.writeUInt32LE(3, 40)),
      /version 3/,
      'UNSUPPORTED',
    );
    expectBad(
      patched(0, 'superblock', (b) => b.writeUInt32LE(4, 360)),
      /incompat/,
      'UNSUPPORTED',
    );
  });

  it('bad checksum: superblock', () => {
    expectBad(patched(0, null, flip(200)), /^superblock 0: checksum mismatch/);
  });

  it('bad checksum: btree node (device details, top-level and bottom mapping trees)', () => {
    expectBad(
      patched(layout.detailsRoot, null, flip(100)),
      new RegExp(`btree node ${layout.detailsRoot} \\(device details tree\\): checksum mismatch`),
    );
    expectBad(
      patched(layout.dataMappingRoot, null, flip(100)),
      new RegExp(`btree node ${layout.dataMappingRoot} \\(top-level mapping tree\\): checksum mismatch`),
    );
    const leaf = layout.leaves[1]!;
    expectBad(
      patched(leaf, null, flip(4000)),
      new RegExp(`btree node ${leaf} \\(mapping tree of device ${layout.devId}\\): checksum mismatch`),
    );
  });

  it('bad checksum: space-map bitmap, index block and data index tree', () => {
    expectBad(
      patched(layout.metaBitmap, null, flip(50)),
      new RegExp(`space-map bitmap ${layout.metaBitmap} .*checksum mismatch`),
    );
    expectBad(
      patched(layout.metaIndex, null, flip(50)),
      new RegExp(`space-map index ${layout.metaIndex} .*checksum mismatch`),
    );
    expectBad(
      patched(layout.dataIndexTree, null, flip(50)),
      new RegExp(`btree node ${layout.dataIndexTree} \\(data space map index tree\\): checksum mismatch`),
    );
  });

  it('a pointer to a block of the wrong type says what the block looks like', () => {
    const meta = patched(0, 'superblock', (b) => b.writeUInt32LE(layout.metaBitmap, 328));
    expectBad(
      meta,
      new RegExp(
        `btree node ${layout.metaBitmap} \\(device details tree\\): checksum mismatch .*looks like a space-map bitmap`,
      ),
    );
  });

  it('block number mismatch', () => {
    const leaf = layout.leaves[0]!;
    expectBad(
      patched(leaf, 'btree', (b) => b.writeUInt32LE(leaf + 1, 8)),
      new RegExp(`btree node ${leaf} .*block number mismatch \\(the block says it is block ${leaf + 1}\\)`),
    );
    expectBad(
      patched(layout.metaBitmap, 'bitmap', (b) => b.writeUInt32LE(7777, 8)),
      /block number mismatch/,
    );
  });

  it('nr_entries > max_entries', () => {
    const leaf = layout.leaves[0]!;
    expectBad(
      patched(leaf, 'btree', (b) => b.writeUInt32LE(b.readUInt32LE(20) + 1, 16)),
      new RegExp(`btree node ${leaf} .*nr_entries 253 > max_entries 252`),
    );
  });

  it('bad node flags, value size and max_entries', () => {
    const leaf = layout.leaves[0]!;
    expectBad(
      patched(leaf, 'btree', (b) => b.writeUInt32LE(3, 4)),
      new RegExp(`btree node ${leaf} .*bad node flags 3`),
    );
    expectBad(
      patched(leaf, 'btree', (b) => b.writeUInt32LE(24, 24)),
      new RegExp(`btree node ${leaf} .*value size 24`),
    );
    expectBad(
      patched(leaf, 'btree', (b) => b.writeUInt32LE(600, 20)),
      new RegExp(`btree node ${leaf} .*bad max_entries 600`),
    );
  });

  it('keys out of order (leaf and internal node), and keys outside the parent range', () => {
    const leaf = layout.leaves[0]!;
    const swap = (b: Buffer): void => {
      const k0 = b.readUInt32LE(32);
      b.writeUInt32LE(b.readUInt32LE(40), 32);
      b.writeUInt32LE(k0, 40);
    };
    expectBad(patched(leaf, 'btree', swap), new RegExp(`btree node ${leaf} .*keys out of order`));
    expectBad(patched(layout.root, 'btree', swap), new RegExp(`btree node ${layout.root} .*keys out of order`));
    // Last key of leaf 0 raised above the first key of leaf 1: outside its range.
    const l0 = layout.leaves[0]!;
    expectBad(
      patched(l0, 'btree', (b) => b.writeUInt32LE(10_000_000, 32 + 8 * (b.readUInt32LE(16) - 1))),
      new RegExp(`btree node ${l0} .*key 10000000 outside the range`),
    );
  });

  it('a btree child that points back to an ancestor (cycle)', () => {
    const meta = patched(layout.root, 'btree', (b) => b.writeUInt32LE(layout.root, 32 + 8 * b.readUInt32LE(20) + 8));
    expectBad(
      meta,
      new RegExp(`btree node ${layout.root} .*child ${layout.root} points back to an ancestor \\(cycle\\)`),
    );
    const pool = openPool(meta);
    expect(() => [...pool.mappingRuns(layout.devId)]).toThrow(/cycle/);
    pool.close();
    // In the device details tree: the root leaf turned into an internal node pointing at itself.
    const d = patched(layout.detailsRoot, 'btree', (b) => {
      b.writeUInt32LE(1, 4);
      b.writeUInt32LE(8, 24);
      b.writeUInt32LE(252, 20);
      b.writeUInt32LE(1, 16);
      b.writeUInt32LE(0, 32);
      b.writeUInt32LE(0, 36);
      b.writeUInt32LE(layout.detailsRoot, 32 + 8 * 252);
    });
    expectBad(d, /cycle/);
  });

  it('a pointer past the end of the file / metadata', () => {
    const meta = patched(layout.root, 'btree', (b) => b.writeUInt32LE(5_000_000, 32 + 8 * b.readUInt32LE(20)));
    expectBad(meta, new RegExp(`btree node ${layout.root} .*child 5000000 is past the end of the metadata`));
    expectBad(
      patched(0, 'superblock', (b) => b.writeUInt32LE(9999, 328)),
      /block 9999 is past the end of the metadata/,
    );
    // A device's bottom-tree root in the top-level leaf.
    const top = patched(layout.dataMappingRoot, 'btree', (b) =>
      b.writeUInt32LE(5_000_000, 32 + 8 * b.readUInt32LE(20)),
    );
    expectBad(
      top,
      new RegExp(`root of the mapping tree of device ${layout.devId} 5000000 is past the end of the metadata`),
    );
    expectBad(
      patched(0, 'superblock', (b) => b.writeUInt32LE(2, 324)),
      /block 85899345\d+ is past the end of the metadata/,
    );
    expectBad(
      patched(0, 'superblock', (b) => b.writeUInt32LE(0x400000, 324)),
      /data mapping root is too large/,
    );
  });

  it('a truncated file', () => {
    const meta = copyFile(base);
    fs.truncateSync(meta, 64 * 1024);
    expectBad(meta, /metadata is truncated: the superblock counts 1024 blocks, the file holds 16/);
    fs.truncateSync(meta, 100);
    expectBad(meta, /too small/);
    fs.truncateSync(meta, 0);
    expectBad(meta, /too small/);
  });

  it('a data block past the data device (nr_blocks)', () => {
    const leaf = layout.leaves[0]!;
    const meta = patched(leaf, 'btree', (b) => b.writeUInt32LE(0x10000, 32 + 8 * b.readUInt32LE(20) + 4));
    expectBad(meta, new RegExp(`btree node ${leaf} .*maps data block \\d+, past the data device`));
    const pool = openPool(meta);
    expect(() => [...pool.mappingRuns(layout.devId)]).toThrow(/past the data device/);
    pool.close();
  });

  it('no metadata snapshot held, or one past the end', () => {
    expect(() => openPool(base, { metadataSnap: true })).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    const meta = patched(0, 'superblock', (b) => b.writeUInt32LE(50_000, 56));
    expect(() => openPool(meta, { metadataSnap: true })).toThrow(/metadata_snap 50000 is past the end/);
  });
});
