/** The thin/ reader against thin_restore-written metadata, with thin_dump and thin_ls as the reference. */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DmiError } from '../../src/errors.js';
import { openPool, type ThinPool } from '../../src/thin/index.js';
import { blockChecksum, identifyBlock, rawChecksum, SALT } from '../../src/thin/checksum.js';
import {
  coalesce,
  copyFile,
  hasThinTools,
  patchBlock,
  poolXml,
  randomPool,
  readBlock,
  removeTmp,
  restore,
  run,
  SKIP_MESSAGE,
  thinDump,
  thinLs,
  tmpDir,
  writeBlock,
  type PoolSpec,
} from './helpers.js';

const DOC_EXAMPLE: PoolSpec = {
  time: 3,
  transaction: 7,
  nrDataBlocks: 1024,
  devices: [
    { id: 1, mapped: 100, transaction: 1, creationTime: 0, snapTime: 2, mappings: [{ v: 0, d: 0, len: 100, time: 0 }] },
    {
      id: 2,
      mapped: 100,
      transaction: 2,
      creationTime: 1,
      snapTime: 1,
      mappings: [
        { v: 0, d: 0, len: 50 },
        { v: 50, d: 100, len: 40, time: 1 },
        { v: 90, d: 90, len: 10 },
      ],
    },
    {
      id: 3,
      mapped: 102,
      transaction: 3,
      creationTime: 2,
      snapTime: 2,
      mappings: [
        { v: 0, d: 0, len: 100 },
        { v: 200, d: 500, time: 2 },
        { v: 202, d: 502, time: 2 },
      ],
    },
  ],
};

/** Compares everything the reader says with thin_dump / thin_ls on the same file. */
function compareWithTools(meta: string, pool: ThinPool, lsExtra: string[] = [], dumpExtra: string[] = []): void {
  const dump = thinDump(meta, dumpExtra);
  const ls = thinLs(meta, lsExtra);
  const sb = pool.superblock;
  expect(String(sb.time)).toBe(dump.superblock.time);
  expect(String(sb.transactionId)).toBe(dump.superblock.transaction);
  expect(String(sb.flags)).toBe(dump.superblock.flags);
  expect(String(sb.version)).toBe(dump.superblock.version);
  expect(String(pool.dataBlockSectors)).toBe(dump.superblock.data_block_size);
  // thin_dump -m prints the snapshot copy's (zeroed) data space-map size; the reader keeps the live one.
  if (!dumpExtra.includes('-m')) expect(String(pool.dataNrBlocks)).toBe(dump.superblock.nr_data_blocks);
  expect(pool.dataBlockBytes).toBe(pool.dataBlockSectors * 512);

  const devices = pool.devices();
  expect([...devices.keys()]).toEqual([...dump.devices.keys()]);
  for (const [id, d] of devices) {
    const a = dump.devices.get(id)!.attrs;
    expect({ mapped: d.mappedBlocks, tx: d.transactionId, ct: d.creationTime, st: d.snapshottedTime }).toEqual({
      mapped: Number(a.mapped_blocks),
      tx: Number(a.transaction),
      ct: Number(a.creation_time),
      st: Number(a.snap_time),
    });
  }

  const usage = pool.usage();
  expect(usage.size).toBe(ls.size);
  for (const [id, row] of ls) {
    const d = devices.get(id)!;
    expect({ dev: id, ...usage.get(id) }).toEqual({
      dev: id,
      mapped: row.mapped,
      exclusive: row.exclusive,
      shared: row.shared,
    });
    expect([d.transactionId, d.creationTime, d.snapshottedTime]).toEqual([
      row.transaction,
      row.createTime,
      row.snapTime,
    ]);
  }

  for (const [id, dd] of dump.devices) {
    const runs = [...pool.mappingRuns(id)];
    expect(runs).toEqual(coalesce(dd.runs));
    const last = dd.runs[dd.runs.length - 1];
    expect(pool.highestMappedBlock(id)).toBe(last ? last.v + last.len - 1 : null);
  }
}

describe.skipIf(!hasThinTools)('thin reader on thin_restore metadata', () => {
  afterAll(removeTmp);

  it('checksums: CRC-32C with the salts verifies real blocks of every type', () => {
    const meta = restore(DOC_EXAMPLE);
    const pool = openPool(meta);
    const sb = pool.superblock;
    const kinds = new Map([
      [0, 'superblock'],
      [sb.metadataSpaceMapRoot.bitmapRoot, 'index'],
      [sb.dataMappingRoot, 'btree'],
      [sb.deviceDetailsRoot, 'btree'],
    ]);
    for (const [n, kind] of kinds) {
      const b = readBlock(meta, n);
      expect(identifyBlock(b)).toBe(kind);
      expect(b.readUInt32LE(0)).toBe(blockChecksum(b, kind as keyof typeof SALT));
      expect((rawChecksum(b) ^ b.readUInt32LE(0)) >>> 0).toBe(SALT[kind as keyof typeof SALT]);
    }
    pool.close();
  });

  it('reads the documented example exactly as thin_dump and thin_ls', () => {
    const meta = restore(DOC_EXAMPLE);
    const pool = openPool(meta);
    compareWithTools(meta, pool);
    expect(Object.fromEntries(pool.usage())).toEqual({
      1: { mapped: 100, exclusive: 0, shared: 100 },
      2: { mapped: 100, exclusive: 40, shared: 60 },
      3: { mapped: 102, exclusive: 2, shared: 100 },
    });
    const sb = pool.superblock;
    expect(sb).toMatchObject({
      version: 1,
      time: 3,
      transactionId: 7,
      metadataSnap: 0,
      dataBlockSize: 128,
      metadataNrBlocks: 1024,
      needsCheck: false,
    });
    expect(sb.dataSpaceMapRoot).toEqual({ nrBlocks: 1024, nrAllocated: 142, bitmapRoot: 4, refCountRoot: 5 });
    expect(sb.metadataSpaceMapRoot).toMatchObject({ nrBlocks: 1024, bitmapRoot: 1, refCountRoot: 2 });
    expect(pool.maxDeviceId()).toBe(3);
    expect(pool.nextFreeDeviceId()).toBe(0);
    expect(pool.nextFreeDeviceId(1)).toBe(4);
    expect(pool.nextFreeDeviceId(0xffffff)).toBe(0xffffff);
    pool.close();
  });

  it('multi-level trees, sharing by data block, an empty device: same as thin_dump and thin_ls', () => {
    for (const seed of [1, 2, 3]) {
      const meta = restore(randomPool(seed));
      const pool = openPool(meta);
      compareWithTools(meta, pool);
      pool.close();
    }
  });

  it('range mappings, data block size and flags (needs_check) round-trip', () => {
    const xml = poolXml({
      time: 9,
      transaction: 12345,
      dataBlockSize: 256,
      nrDataBlocks: 70000,
      devices: [
        {
          id: 7,
          transaction: 3,
          creationTime: 1,
          snapTime: 4,
          mappings: [
            { v: 0, d: 10, len: 5000 },
            { v: 6000, d: 60000, len: 10, time: 4 },
          ],
        },
        { id: 0xffffff, mappings: [{ v: 2 ** 32 + 5, d: 5, len: 3, time: 2 }] },
      ],
    }).replace('<superblock ', '<superblock flags="1" ');
    const meta = restore(xml);
    const pool = openPool(meta);
    expect(pool.superblock.needsCheck).toBe(true);
    expect(pool.dataBlockBytes).toBe(256 * 512);
    compareWithTools(meta, pool);
    expect([...pool.mappingRuns(7)]).toEqual([
      { vblock: 0, dblock: 10, length: 5000 },
      { vblock: 6000, dblock: 60000, length: 10 },
    ]);
    expect(pool.highestMappedBlock(0xffffff)).toBe(2 ** 32 + 7);
    expect(pool.maxDeviceId()).toBe(0xffffff);
    expect(pool.nextFreeDeviceId(0xffffff)).toBe(0);
    expect(() => pool.mappingRuns(8).next()).toThrow(/device 8 is not in the pool/);
    pool.close();
  });

  it('space maps: bitmaps counted, ref counts as thin_restore sets them, every block in use verified', () => {
    const spec = randomPool(7);
    const meta = restore(spec);
    const pool = openPool(meta);
    const dump = thinDump(meta);
    const refs = new Map<number, number>();
    for (const d of dump.devices.values())
      for (const r of d.runs) for (let i = 0; i < r.len; i++) refs.set(r.d + i, (refs.get(r.d + i) ?? 0) + 1);
    pool.usage();
    const sm = pool.spaceMaps();
    expect(sm.data.used).toBe(refs.size);
    expect(sm.data.nrAllocated).toBe(refs.size);
    expect(sm.data.problems).toEqual([]);
    expect(sm.data.overflowBlocks).toBe([...refs.values()].filter((n) => n >= 3).length);
    expect(sm.data.overflowEntries).toBe(sm.data.overflowBlocks);
    expect(sm.data.nrBlocks).toBe(Number(dump.superblock.nr_data_blocks));
    expect(sm.metadata.nrBlocks).toBe(1024);
    for (const [b, n] of [...refs].slice(0, 300)) expect(pool.dataRefCount(b)).toBe(n);
    expect(pool.dataRefCount(spec.nrDataBlocks! - 1)).toBe(0);
    // Every block the bitmaps count as used was read and verified, and nothing else.
    expect(pool.stats.blocksVerified).toBe(sm.metadata.used);
    pool.close();
  });

  it('reads a byte range inside a larger image (offset + length)', () => {
    const meta = restore(randomPool(4));
    const image = path.join(tmpDir(), 'image.bin');
    const body = fs.readFileSync(meta);
    const pad = Buffer.alloc(3 * 1024 * 1024 + 512, 0xaa);
    fs.writeFileSync(image, Buffer.concat([pad, body, pad]));
    const a = openPool(meta);
    const b = openPool(image, { offset: pad.length, length: body.length });
    expect(b.usage()).toEqual(a.usage());
    expect(b.spaceMaps()).toEqual(a.spaceMaps());
    expect([...b.mappingRuns(10)]).toEqual([...a.mappingRuns(10)]);
    expect(() => openPool(image, { offset: pad.length, length: 8192 })).toThrow(/truncated/);
    a.close();
    b.close();
  });

  it('a small cache gives the same answers (chunks evicted and reused during walks)', () => {
    const meta = restore(randomPool(5, 3, 6, 1500));
    const a = openPool(meta);
    const b = openPool(meta, { chunkBlocks: 1, cacheBytes: 2 * 4096 });
    expect(b.usage()).toEqual(a.usage());
    expect(b.spaceMaps()).toEqual(a.spaceMaps());
    for (const id of a.devices().keys()) expect([...b.mappingRuns(id)]).toEqual([...a.mappingRuns(id)]);
    a.close();
    b.close();
  });

  it('held metadata snapshot: reads the superblock copy at metadata_snap (thin_ls -m / thin_dump -m agree)', () => {
    const meta = copyFile(restore(randomPool(6)));
    expect(() => openPool(meta, { metadataSnap: true })).toThrow(DmiError);
    // Make a kernel-like snapshot copy in a free block: same trees, zeroed space-map roots, older transaction.
    const at = 1000;
    const copy = readBlock(meta, 0);
    copy.writeUInt32LE(at, 8);
    copy.writeUInt32LE(0, 12);
    copy.writeUInt32LE(41, 48); // transaction id
    copy.fill(0, 64, 320); // space-map roots
    writeBlock(meta, at, copy, 'superblock');
    patchBlock(meta, 0, 'superblock', (b) => b.writeUInt32LE(at, 56));
    const live = openPool(meta);
    const snap = openPool(meta, { metadataSnap: true });
    expect(live.superblock.metadataSnap).toBe(at);
    expect(snap.superblock.blockNr).toBe(at);
    expect(snap.superblock.transactionId).toBe(41);
    expect(live.superblock.transactionId).toBe(50);
    compareWithTools(meta, snap, ['-m'], ['-m']);
    expect(snap.spaceMaps()).toEqual(live.spaceMaps());
    live.close();
    snap.close();
  });

  it('never writes: the file is byte-identical after every read', () => {
    const meta = restore(randomPool(8));
    const sha = (): string => createHash('sha256').update(fs.readFileSync(meta)).digest('hex');
    const before = sha();
    const mtime = fs.statSync(meta).mtimeMs;
    const pool = openPool(meta);
    pool.usage();
    pool.spaceMaps();
    for (const id of pool.devices().keys()) for (const _run of pool.mappingRuns(id));
    pool.close();
    expect(sha()).toBe(before);
    expect(fs.statSync(meta).mtimeMs).toBe(mtime);
  });

  it('missing file and directory are clear errors', () => {
    expect(() => openPool('/nonexistent/meta')).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(() => openPool(tmpDir())).toThrow(DmiError);
  });

  it('thin_check accepts the files the tests build', () => {
    run('thin_check', [restore(randomPool(9))]);
  });
});

if (!hasThinTools) {
  describe('thin reader', () => {
    it.skip(SKIP_MESSAGE, () => {});
  });
}
