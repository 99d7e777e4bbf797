/**
 * The export's executor on real thin metadata (written by thin_restore) and a data file of random bytes:
 * the image and its sha256 against the image built block by block from the mapping, with the sha256 hashed
 * on this thread or in the worker thread, sparse or not, small windows, extents, progress, abort, runs
 * given by the caller, bad data. The data is never written (checksums before/after).
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyThinDevice, DEFAULT_COPY_BUFFER, type CopyProgress } from '../../src/thin/copy.js';
import { dropPrestartedHashWorker, HASH_WORKER_MIN_BYTES, prestartHashWorker } from '../../src/io/copy-executor.js';
import { openPool, type ThinPool } from '../../src/thin/pool.js';
import { hasThinTools, prng, removeTmp, restore, SKIP_MESSAGE, tmpDir, type MappingSpec } from '../thin/helpers.js';
import { hashFile } from '../support/cli.js';

const BS = 64 * 1024;
const MiB = 1024 * 1024;
const d = hasThinTools ? describe : describe.skip;
if (!hasThinTools) console.warn(SKIP_MESSAGE);

interface Dev {
  id: number;
  mappings: MappingSpec[];
  size: number;
}

/** The image of `dev`, block by block. */
function naive(dev: Dev, data: Buffer): Buffer {
  const img = Buffer.alloc(dev.size);
  for (const m of dev.mappings) {
    for (let i = 0; i < (m.len ?? 1); i++) {
      const v = (m.v + i) * BS;
      if (v < dev.size) data.copy(img, v, (m.d + i) * BS, (m.d + i) * BS + Math.min(BS, dev.size - v));
    }
  }
  return img;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

d('copy executor on real thin metadata', () => {
  let dir: string;
  let meta: string;
  let dataFile: string;
  let data: Buffer;
  let dataSha: string;
  let pool: ThinPool;
  const NDATA = 600;
  // 1: scattered single blocks; 2: runs of 1..6 blocks out of order with holes, some past the record size;
  // 3: a big sparse device (past the worker threshold) with three runs
  const devs: Dev[] = [];
  let n = 0;
  const out = () => path.join(dir, `out-${++n}.img`);

  beforeAll(() => {
    dir = tmpDir();
    const rnd = prng(99);
    data = randomBytes(NDATA * BS);
    dataFile = path.join(dir, 'data');
    fs.writeFileSync(dataFile, data);
    dataSha = hashFile(dataFile);
    const free = Array.from({ length: NDATA }, (_, i) => i).sort(() => rnd() - 0.5);
    const scattered: MappingSpec[] = [];
    for (let v = 0; v < 150; v++) scattered.push({ v, d: free.pop()! });
    devs.push({ id: 1, mappings: scattered, size: 150 * BS });
    // runs: take aligned slots of 8 blocks so runs do not overlap in the data
    const slots = Array.from({ length: 40 }, (_, i) => 8 * (i + 25)).sort(() => rnd() - 0.5);
    const runs: MappingSpec[] = [];
    let v = 2;
    while (slots.length > 10) {
      const len = 1 + Math.floor(rnd() * 6);
      runs.push({ v, d: slots.pop()!, len });
      v += len + (rnd() < 0.3 ? 1 + Math.floor(rnd() * 3) : 0);
    }
    devs.push({ id: 2, mappings: runs, size: (v - 4) * BS + 512 * 3 }); // the last run (partly) past the end
    const big = [
      { v: 10, d: 560, len: 8 },
      { v: 1100, d: 570, len: 4 }, // after a 67 MiB hole
      { v: 1190, d: 580, len: 10 }, // the end
    ];
    devs.push({ id: 3, mappings: big, size: 1200 * BS });
    expect(1200 * BS).toBeGreaterThan(HASH_WORKER_MIN_BYTES);
    meta = restore({ nrDataBlocks: NDATA, devices: devs.map((x) => ({ id: x.id, mappings: x.mappings })) });
    pool = openPool(meta);
  });
  afterAll(() => {
    pool?.close();
    if (dataFile) expect(hashFile(dataFile)).toBe(dataSha);
    removeTmp();
  });

  async function copy(dev: Dev, extra: Partial<Parameters<typeof copyThinDevice>[0]> = {}) {
    const file = out();
    const fd = fs.openSync(file, 'wx');
    try {
      const r = await copyThinDevice({
        pool,
        devId: dev.id,
        dataPath: dataFile,
        size: dev.size,
        out: fd,
        outName: file,
        ...extra,
      });
      return { r, file };
    } finally {
      fs.closeSync(fd);
    }
  }

  it('scattered, runs with holes, a big sparse device: the same image and sha256 hashed here or in the worker', async () => {
    for (const dev of devs) {
      const want = naive(dev, data);
      const wantSha = sha(want);
      const results = [];
      for (const hashWorker of [false, true, 'auto'] as const) {
        const { r, file } = await copy(dev, { hashWorker });
        expect(r.sha256, `device ${dev.id} hashWorker ${hashWorker}`).toBe(wantSha);
        expect(fs.readFileSync(file).equals(want)).toBe(true);
        expect(r.hashedInWorker).toBe(hashWorker === 'auto' ? dev.size >= HASH_WORKER_MIN_BYTES : hashWorker);
        results.push(r);
        fs.rmSync(file);
      }
      // the same counts whatever the hashing
      const counts = results.map(
        ({ mappedBytes, copiedBytes, holes, holeBytes, runs, mappedPastEnd, reads, writes }) => ({
          mappedBytes,
          copiedBytes,
          holes,
          holeBytes,
          runs,
          mappedPastEnd,
          reads,
          writes,
        }),
      );
      expect(counts[1]).toEqual(counts[0]);
      expect(counts[2]).toEqual(counts[0]);
    }
  });

  it('a worker started ahead (prestartHashWorker) is taken by the next copy that hashes in a worker; dropped if none', async () => {
    const dev = devs[2]!;
    const wantSha = sha(naive(dev, data));
    prestartHashWorker();
    prestartHashWorker(); // idempotent
    let { r, file } = await copy(dev, { hashWorker: true });
    expect(r.sha256).toBe(wantSha);
    expect(r.hashWorkerPrestarted).toBe(true);
    fs.rmSync(file);
    // taken: the next copy starts its own
    ({ r, file } = await copy(dev, { hashWorker: true }));
    expect(r.sha256).toBe(wantSha);
    expect(r.hashWorkerPrestarted).toBe(false);
    fs.rmSync(file);
    // a copy hashed on this thread leaves it for the next; a dropped one is not used
    prestartHashWorker();
    ({ r, file } = await copy(devs[0]!, { hashWorker: false }));
    expect(r.hashWorkerPrestarted).toBe(false);
    fs.rmSync(file);
    await dropPrestartedHashWorker();
    await dropPrestartedHashWorker();
    ({ r, file } = await copy(dev, { hashWorker: true }));
    expect(r.sha256).toBe(wantSha);
    expect(r.hashWorkerPrestarted).toBe(false);
    fs.rmSync(file);
  });

  it('reads on this thread or through the thread pool: the same image and counts; errors wait for reads in flight', async () => {
    for (const dev of devs.slice(0, 2)) {
      const want = sha(naive(dev, data));
      const got = [];
      for (const readMode of ['sync', 'async', 'auto'] as const) {
        const { r, file } = await copy(dev, { readMode, hashWorker: true, bufferBytes: 16 * BS });
        expect(r.sha256, `${readMode}`).toBe(want);
        expect(hashFile(file)).toBe(want);
        if (readMode === 'sync') expect(r.asyncWindows).toBe(0);
        if (readMode === 'async') expect(r.asyncWindows).toBe(Math.ceil(dev.size / (16 * BS)));
        got.push([r.reads, r.writes, r.copiedBytes]);
        fs.rmSync(file);
      }
      expect(got[1]).toEqual(got[0]);
    }
    // an image shorter than its extents, read through the thread pool: the error, after every read settled
    const a = path.join(dir, 'short-a.img');
    fs.writeFileSync(a, data.subarray(0, 200 * BS));
    const ext = [{ path: a, offset: 0, length: NDATA * BS }];
    await expect(copy(devs[0]!, { dataExtents: ext, readMode: 'async', hashWorker: true })).rejects.toMatchObject({
      code: 'BAD_INPUT',
      message: expect.stringMatching(/truncated image\?$/),
    });
    await expect(copy(devs[0]!, { dataExtents: ext, readMode: 'sync' })).rejects.toMatchObject({
      code: 'BAD_INPUT',
      message: expect.stringMatching(/truncated image\?$/),
    });
  });

  it('reads in data order: a scattered device takes far fewer reads than blocks, some merged', async () => {
    const dev = devs[0]!;
    const { r } = await copy(dev);
    expect(r.runs).toBeGreaterThan(140); // almost every block its own run
    // 150 blocks in two windows, each sorted by place: physically adjacent blocks are read together
    expect(r.reads).toBeLessThan(r.runs);
    expect(r.mergedReads).toBeGreaterThan(0);
    expect(r.writes).toBe(Math.ceil(dev.size / DEFAULT_COPY_BUFFER));
  });

  it('counts: mapped, copied, holes, past the end; sparse output leaves holes unallocated, --no-sparse allocates them', async () => {
    const dev = devs[1]!;
    const mapped = dev.mappings.reduce((s, m) => s + (m.len ?? 1) * BS, 0);
    const copied = dev.mappings.reduce(
      (s, m) => s + Math.max(0, Math.min(dev.size, (m.v + (m.len ?? 1)) * BS) - m.v * BS),
      0,
    );
    const { r, file } = await copy(dev);
    expect(r).toMatchObject({
      size: dev.size,
      mappedBytes: mapped,
      copiedBytes: copied,
      mappedPastEnd: mapped - copied,
      holeBytes: dev.size - copied,
    });
    expect(r.holes).toBeGreaterThan(1);
    const big = devs[2]!;
    const s = await copy(big);
    expect(s.r.holes).toBe(3);
    expect(fs.statSync(s.file).blocks * 512).toBeLessThan(4 * MiB); // 22 blocks written of 75 MiB
    const ns = await copy(big, { sparse: false });
    expect(ns.r.sha256).toBe(s.r.sha256);
    expect(fs.statSync(ns.file).blocks * 512).toBeGreaterThanOrEqual(big.size);
    for (const f of [file, s.file, ns.file]) fs.rmSync(f);
  });

  it('small windows (not a block multiple) split runs across windows; the same bytes, sparse or not, in the worker too', async () => {
    for (const dev of devs.slice(0, 2)) {
      const want = sha(naive(dev, data));
      for (const sparse of [true, false]) {
        const { r, file } = await copy(dev, { bufferBytes: 3 * 512 * 128 + 512, sparse, hashWorker: true });
        expect(r.sha256).toBe(want);
        expect(hashFile(file)).toBe(want);
        fs.rmSync(file);
      }
    }
  });

  it('progress: image order, monotone, ends at the size; holes reported in 64 MiB steps', async () => {
    for (const hashWorker of [false, true]) {
      const dev = devs[2]!;
      const seen: CopyProgress[] = [];
      const { r, file } = await copy(dev, { hashWorker, onProgress: (p) => seen.push({ ...p }) });
      expect(seen.length).toBeGreaterThanOrEqual(4);
      for (let i = 1; i < seen.length; i++) expect(seen[i]!.done).toBeGreaterThan(seen[i - 1]!.done);
      expect(seen.every((p) => p.total === dev.size && p.done <= dev.size)).toBe(true);
      expect(seen.at(-1)).toEqual({ done: dev.size, total: dev.size, copied: r.copiedBytes });
      // the 67 MiB hole after the first run is hashed in steps: progress inside it
      expect(seen.some((p) => p.done > 20 * MiB && p.done < 68 * MiB)).toBe(true);
      fs.rmSync(file);
    }
  });

  it('abort: IO "export interrupted", with the worker or without', async () => {
    for (const hashWorker of [false, true]) {
      const ac = new AbortController();
      const file = out();
      const fd = fs.openSync(file, 'wx');
      const p = copyThinDevice({
        pool,
        devId: 3,
        dataPath: dataFile,
        size: devs[2]!.size,
        out: fd,
        outName: file,
        hashWorker,
        signal: ac.signal,
        onProgress: () => ac.abort(),
      });
      await expect(p).rejects.toMatchObject({ code: 'IO', message: `${file}: export interrupted` });
      fs.closeSync(fd);
    }
  });

  it('runs given by the caller (a device not in the device tree): only those are copied', async () => {
    const runs = [
      { vblock: 1, dblock: 7, length: 2 },
      { vblock: 5, dblock: 3, length: 1 },
    ];
    const size = 8 * BS;
    const dev: Dev = { id: 77, size, mappings: runs.map((x) => ({ v: x.vblock, d: x.dblock, len: x.length })) };
    const { r, file } = await copy(dev, { runs });
    expect(r.sha256).toBe(sha(naive(dev, data)));
    expect(r.runs).toBe(2);
    fs.rmSync(file);
    // without runs, the device must be in the pool
    await expect(copy(dev)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('extents: the data as pieces of two files (in another order) gives the same image', async () => {
    // data blocks [0, 300) live in b at offset 1 MiB, [300, 600) in a at offset 0
    const a = path.join(dir, 'a.img');
    const b = path.join(dir, 'b.img');
    fs.writeFileSync(a, data.subarray(300 * BS));
    fs.writeFileSync(b, Buffer.concat([Buffer.alloc(MiB, 0x55), data.subarray(0, 300 * BS)]));
    const ext = [
      { path: b, offset: MiB, length: 300 * BS },
      { path: a, offset: 0, length: 300 * BS },
    ];
    for (const dev of devs) {
      for (const hashWorker of [false, true]) {
        const { r, file } = await copy(dev, {
          dataExtents: ext,
          dataLabel: 'disk: vg/pool_tdata',
          hashWorker,
          bufferBytes: 512 * 1024,
        });
        expect(r.sha256).toBe(sha(naive(dev, data)));
        fs.rmSync(file);
      }
    }
    // an image shorter than its extents say: a short read, naming the block and the file
    fs.truncateSync(a, 100 * BS + 1000);
    const dev = devs[0]!;
    const err = await copy(dev, { dataExtents: ext, dataLabel: 'disk: vg/pool_tdata', hashWorker: true }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'BAD_INPUT',
      message: expect.stringMatching(
        new RegExp(
          `^disk: vg/pool_tdata: data block (\\d+) \\(virtual block \\d+ of thin device 1\\) is at byte \\d+ of ${a}, past its end \\(${100 * BS + 1000} bytes\\): truncated image\\?$`,
        ),
      ),
    });
    const named = Number(/data block (\d+)/.exec((err as Error).message)![1]);
    expect(named).toBeGreaterThanOrEqual(400);
    expect(dev.mappings.some((m) => m.d === named)).toBe(true);
  });

  it('a data file shorter than a mapped block: BAD_INPUT naming the first block past its end', async () => {
    const short = path.join(dir, 'short-data');
    fs.writeFileSync(short, data.subarray(0, 300 * BS));
    const dev = devs[0]!;
    const first = dev.mappings.find((m) => m.d >= 300)!;
    await expect(copy(dev, { dataPath: short })).rejects.toMatchObject({
      code: 'BAD_INPUT',
      message: `${short}: data block ${first.d} (virtual block ${first.v} of thin device 1) is past the end of the data file (${300 * BS} bytes; ${BS} bytes per block)`,
    });
  });

  it('an output that is not a file (/dev/null) gets every byte written, holes as zeros', async () => {
    const fd = fs.openSync('/dev/null', 'w');
    try {
      const dev = devs[1]!;
      const r = await copyThinDevice({
        pool,
        devId: dev.id,
        dataPath: dataFile,
        size: dev.size,
        out: fd,
        bufferBytes: 4 * BS,
      });
      expect(r.sha256).toBe(sha(naive(dev, data)));
      expect(r.writes).toBe(Math.ceil(dev.size / (4 * BS)));
    } finally {
      fs.closeSync(fd);
    }
    expect(DEFAULT_COPY_BUFFER % BS).toBe(0);
  });
});
