/**
 * The export's read plan, as data (no I/O): windows in image order, reads sorted by place in the data and
 * physically adjacent pieces merged into scatter reads, holes, mappings past the image end, extent
 * boundaries, errors. A reference check replays a plan on in-memory data and compares the image it builds
 * (and the bytes it would write) with the image built naively block by block.
 */
import { describe, expect, it } from 'vitest';
import { ExtentMap } from '../../src/io/extents.js';
import { MAX_IOV, planCopy, type CopyPlanOptions, type CopyRun, type CopyWindow } from '../../src/io/copy-plan.js';

const KB = 1024;

/** Deterministic bytes (never all zero per block, so a misplaced or missing read shows). */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = (x & 0xff) | 1;
  }
  return b;
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The image, block by block, from the runs and the logical data bytes. */
function naiveImage(runs: CopyRun[], size: number, bs: number, data: Buffer): Buffer {
  const img = Buffer.alloc(size);
  for (const r of runs) {
    for (let i = 0; i < r.length; i++) {
      const v = (r.vblock + i) * bs;
      if (v >= size) continue;
      const n = Math.min(bs, size - v);
      data.copy(img, v, (r.dblock + i) * bs, (r.dblock + i) * bs + n);
    }
  }
  return img;
}

/**
 * Replays the plan on `files` (path → bytes): every window filled by its reads and fills, then checked:
 * the image in order (windows and zerosBefore), what is written, and the plan's invariants.
 */
function replay(
  windows: CopyWindow[],
  files: Map<string, Buffer>,
  o: { size: number; W: number; sparse: boolean; fileOrder: string[] },
) {
  const img = Buffer.alloc(o.size, 0xee); // what the hash sees, in order
  const written = Buffer.alloc(o.size, 0xee); // what is written (0xee: never written)
  let pos = 0;
  for (const w of windows) {
    expect(w.len).toBeLessThanOrEqual(o.W);
    expect(w.outPos).toBe(pos + w.zerosBefore);
    if (!o.sparse) expect(w.zerosBefore).toBe(0);
    img.fill(0, pos, w.outPos);
    const buf = Buffer.alloc(w.len, 0xdd); // 0xdd: neither read nor filled
    const covered = new Uint8Array(w.len);
    for (const [at, n] of w.fills) {
      buf.fill(0, at, at + n);
      for (let i = at; i < at + n; i++) covered[i]!++;
    }
    // reads: sorted by (file order, offset), each one contiguous in its file, scattered into the window
    for (let i = 1; i < w.reads.length; i++) {
      const a = w.reads[i - 1]!;
      const b = w.reads[i]!;
      const fa = o.fileOrder.indexOf(a.path);
      const fb = o.fileOrder.indexOf(b.path);
      expect(fa < fb || (fa === fb && a.offset <= b.offset)).toBe(true);
    }
    for (const r of w.reads) {
      expect(r.into.reduce((s, [, n]) => s + n, 0)).toBe(r.length);
      expect(r.into.length).toBeLessThanOrEqual(MAX_IOV);
      const src = files.get(r.path)!;
      expect(r.offset + r.length).toBeLessThanOrEqual(src.length);
      let k = r.offset;
      for (const [at, n] of r.into) {
        src.copy(buf, at, k, k + n);
        for (let i = at; i < at + n; i++) covered[i]!++;
        k += n;
      }
    }
    // every byte of the window is read or filled exactly once
    expect(covered.every((c) => c === 1)).toBe(true);
    buf.copy(img, w.outPos);
    for (const [at, n] of w.writes) buf.copy(written, w.outPos + at, at, at + n);
    pos = w.outPos + w.len;
  }
  expect(pos).toBe(o.size);
  return { img, written };
}

function plan(o: Omit<CopyPlanOptions, 'dataPath' | 'dataBytes'> & { dataBytes?: number | null }) {
  const p = planCopy({ dataPath: 'data', dataBytes: null, ...o });
  const windows = [...p.windows];
  return { windows, totals: p.totals };
}

describe('copy plan', () => {
  it('reads a window in data order and merges physically adjacent runs that are virtually apart', () => {
    const bs = 1024;
    // virtual 0..1 → data 9..10, virtual 4 → data 11 (adjacent to the first run's end), virtual 6 → data 2
    const runs = [
      { vblock: 0, dblock: 9, length: 2 },
      { vblock: 4, dblock: 11, length: 1 },
      { vblock: 6, dblock: 2, length: 1 },
    ];
    const { windows, totals } = plan({ runs, size: 8 * bs, blockBytes: bs, windowBytes: 64 * KB, sparse: true });
    expect(windows).toHaveLength(1);
    const [w] = windows;
    expect(w).toEqual({
      zerosBefore: 0,
      outPos: 0,
      len: 8 * bs,
      reads: [
        { path: 'data', offset: 2 * bs, length: bs, dataPos: 2 * bs, into: [[6 * bs, bs]] },
        // one read of data blocks 9..11 into virtual blocks 0..1 and 4
        {
          path: 'data',
          offset: 9 * bs,
          length: 3 * bs,
          dataPos: 9 * bs,
          into: [
            [0, 2 * bs],
            [4 * bs, bs],
          ],
        },
      ],
      fills: [
        [2 * bs, 2 * bs],
        [5 * bs, bs],
        [7 * bs, bs],
      ],
      writes: [
        [0, 2 * bs],
        [4 * bs, bs],
        [6 * bs, bs],
      ],
    });
    expect(totals).toEqual({
      mappedBytes: 4 * bs,
      copiedBytes: 4 * bs,
      holes: 3,
      holeBytes: 4 * bs,
      runs: 3,
      mappedPastEnd: 0,
      reads: 2,
      mergedReads: 1,
    });
  });

  it('a scattered device: every block its own run, data in reverse order → one read per window', () => {
    const bs = 512;
    const n = 64;
    const runs = Array.from({ length: n }, (_, v) => ({ vblock: v, dblock: n - 1 - v, length: 1 }));
    const { windows, totals } = plan({ runs, size: n * bs, blockBytes: bs, windowBytes: 16 * bs, sparse: true });
    expect(windows).toHaveLength(4);
    for (const [i, w] of windows.entries()) {
      expect(w.reads).toHaveLength(1);
      const r = w.reads[0]!;
      expect(r.offset).toBe((n - 16 * (i + 1)) * bs);
      expect(r.length).toBe(16 * bs);
      // ascending in the data = descending in the window
      expect(r.into).toEqual(Array.from({ length: 16 }, (_, k) => [(15 - k) * bs, bs]));
      expect(w.writes).toEqual([[0, 16 * bs]]);
    }
    expect(totals.reads).toBe(4);
  });

  it('a scatter read takes at most IOV_MAX buffers', () => {
    const bs = 512;
    const n = MAX_IOV + 10;
    // every other virtual block, physically consecutive
    const runs = Array.from({ length: n }, (_, i) => ({ vblock: 2 * i, dblock: i, length: 1 }));
    const { windows } = plan({ runs, size: 2 * n * bs, blockBytes: bs, windowBytes: 2 * n * bs, sparse: true });
    expect(windows).toHaveLength(1);
    expect(windows[0]!.reads.map((r) => r.into.length)).toEqual([MAX_IOV, 10]);
    expect(windows[0]!.reads[1]!.offset).toBe(MAX_IOV * bs);
  });

  it('holes: small ones zero-filled inside windows, big ones carried between windows (sparse), all written when not sparse', () => {
    const bs = 1024;
    const runs = [
      { vblock: 2, dblock: 0, length: 2 },
      { vblock: 5, dblock: 2, length: 1 }, // 1-block hole before
      { vblock: 40, dblock: 3, length: 2 }, // 34-block hole before: big
    ];
    const size = 48 * bs; // 6-block hole at the end
    const sparse = plan({ runs, size, blockBytes: bs, windowBytes: 16 * bs, bigHoleBytes: 8 * bs, sparse: true });
    expect(sparse.windows.map((w) => [w.zerosBefore, w.outPos, w.len])).toEqual([
      [0, 0, 6 * bs], // the 2-block hole at the start, the run, a 1-block hole, the run
      [34 * bs, 40 * bs, 8 * bs], // the run, then the last hole (under bigHoleBytes): filled, not written
    ]);
    expect(sparse.windows[0]!.fills).toEqual([
      [0, 2 * bs],
      [4 * bs, bs],
    ]);
    expect(sparse.windows[0]!.writes).toEqual([
      [2 * bs, 2 * bs],
      [5 * bs, bs],
    ]);
    expect(sparse.windows[1]!.fills).toEqual([[2 * bs, 6 * bs]]);
    expect(sparse.windows[1]!.writes).toEqual([[0, 2 * bs]]);
    expect(sparse.totals).toMatchObject({ holes: 4, holeBytes: (2 + 1 + 34 + 6) * bs, copiedBytes: 5 * bs });

    const full = plan({ runs, size, blockBytes: bs, windowBytes: 16 * bs, sparse: false });
    expect(full.windows.map((w) => [w.zerosBefore, w.outPos, w.len])).toEqual([
      [0, 0, 16 * bs],
      [0, 16 * bs, 16 * bs],
      [0, 32 * bs, 16 * bs],
    ]);
    for (const w of full.windows) expect(w.writes).toEqual([[0, w.len]]);
    expect(full.totals).toMatchObject({ holes: 4, holeBytes: 43 * bs });

    // a device that maps nothing: one hole, carried (sparse) or filled (not sparse)
    expect(plan({ runs: [], size: 40 * bs, blockBytes: bs, windowBytes: 16 * bs, sparse: true }).windows).toEqual([
      { zerosBefore: 40 * bs, outPos: 40 * bs, len: 0, reads: [], fills: [], writes: [] },
    ]);
    const none = plan({ runs: [], size: 40 * bs, blockBytes: bs, windowBytes: 16 * bs, sparse: false });
    expect(none.windows.map((w) => w.fills)).toEqual([[[0, 16 * bs]], [[0, 16 * bs]], [[0, 8 * bs]]]);
    expect(plan({ runs: [], size: 0, blockBytes: bs, windowBytes: 16 * bs, sparse: true }).windows).toEqual([]);
  });

  it('mappings at or past the image end are counted, not read; a run across the end is cut', () => {
    const bs = 1024;
    const runs = [
      { vblock: 0, dblock: 5, length: 4 }, // crosses the end (size = 3 blocks)
      { vblock: 10, dblock: 0, length: 2 }, // past it
    ];
    const { windows, totals } = plan({
      runs,
      size: 3 * bs,
      blockBytes: bs,
      windowBytes: 64 * KB,
      sparse: true,
      dataBytes: 8 * bs,
    });
    expect(windows).toHaveLength(1);
    expect(windows[0]!.reads).toEqual([
      { path: 'data', offset: 5 * bs, length: 3 * bs, dataPos: 5 * bs, into: [[0, 3 * bs]] },
    ]);
    expect(totals).toMatchObject({ mappedBytes: 6 * bs, copiedBytes: 3 * bs, mappedPastEnd: 3 * bs, holes: 0 });
  });

  it('a run longer than a window (window not a block multiple) is split across windows', () => {
    const bs = 1024;
    const runs = [{ vblock: 0, dblock: 0, length: 10 }];
    const { windows } = plan({ runs, size: 10 * bs, blockBytes: bs, windowBytes: 3 * bs + 512 + 100, sparse: true });
    const W = 3 * bs + 512; // rounded down to 512
    expect(windows.map((w) => [w.outPos, w.len, w.reads[0]!.offset])).toEqual([
      [0, W, 0],
      [W, W, W],
      [2 * W, 10 * bs - 2 * W, 2 * W],
    ]);
  });

  it('extents: reads are split at extent boundaries, sorted by file then offset, merged only when adjacent in the LV too', () => {
    const bs = 1024;
    // LV: [a.img 0..4 blocks) [b.img 8..12) [a.img 4..8): a.img 0..8 is file-adjacent across extents 1 and 3
    const map = new ExtentMap([
      { path: 'a.img', offset: 0, length: 4 * bs },
      { path: 'b.img', offset: 8 * bs, length: 4 * bs },
      { path: 'a.img', offset: 4 * bs, length: 4 * bs },
    ]);
    // virtual 0..5 → LV blocks 2..7 (crosses a → b), virtual 6 → LV 11 (a.img block 7), virtual 7 → LV 8 (a.img block 4)
    const runs = [
      { vblock: 0, dblock: 2, length: 6 },
      { vblock: 6, dblock: 11, length: 1 },
      { vblock: 7, dblock: 8, length: 1 },
    ];
    const { windows, totals } = plan({
      runs,
      size: 8 * bs,
      blockBytes: bs,
      windowBytes: 64 * KB,
      sparse: true,
      extents: map,
    });
    expect(windows[0]!.reads).toEqual([
      { path: 'a.img', offset: 2 * bs, length: 2 * bs, dataPos: 2 * bs, into: [[0, 2 * bs]] },
      // a.img block 4 follows block 3 in the file, but is LV block 8, not 4: a read of its own
      { path: 'a.img', offset: 4 * bs, length: bs, dataPos: 8 * bs, into: [[7 * bs, bs]] },
      { path: 'a.img', offset: 7 * bs, length: bs, dataPos: 11 * bs, into: [[6 * bs, bs]] },
      { path: 'b.img', offset: 8 * bs, length: 4 * bs, dataPos: 4 * bs, into: [[2 * bs, 4 * bs]] },
    ]);
    expect(totals.reads).toBe(4);
  });

  it('extents: file-adjacent pieces of different extents are not merged (a read is contiguous in the LV too)', () => {
    const bs = 1024;
    // LV: [f 4..8 blocks) then [f 0..4): LV block 3 is f block 7, LV block 4 is f block 0
    const map = new ExtentMap([
      { path: 'f', offset: 4 * bs, length: 4 * bs },
      { path: 'f', offset: 0, length: 4 * bs },
    ]);
    // virtual 0 → LV 7 (f block 3), virtual 2 → LV 0 (f block 4): adjacent in f, far apart in the LV
    const runs = [
      { vblock: 0, dblock: 7, length: 1 },
      { vblock: 2, dblock: 0, length: 1 },
    ];
    const { windows } = plan({ runs, size: 4 * bs, blockBytes: bs, windowBytes: 64 * KB, sparse: true, extents: map });
    expect(windows[0]!.reads.map((r) => [r.offset, r.dataPos, r.into])).toEqual([
      [3 * bs, 7 * bs, [[0, bs]]],
      [4 * bs, 0, [[2 * bs, bs]]],
    ]);
  });

  it('bad input: size, data too short (naming the first block past the end), runs out of order or overlapping', () => {
    const bs = 1024;
    const base = { blockBytes: bs, windowBytes: 64 * KB, sparse: true };
    expect(() => plan({ ...base, runs: [], size: 1000 })).toThrow(
      /device size 1000 is not a non-negative multiple of 512/,
    );
    const short = () =>
      plan({
        ...base,
        runs: [{ vblock: 3, dblock: 6, length: 4 }],
        size: 16 * bs,
        dataBytes: 8 * bs,
        dataName: 'pool/data',
        deviceName: 'thin device 7',
      });
    expect(short).toThrow(
      /^pool\/data: data block 8 \(virtual block 5 of thin device 7\) is past the end of the data file \(8192 bytes; 1024 bytes per block\)$/,
    );
    expect(short).toThrow(
      expect.objectContaining({ code: 'BAD_INPUT', details: { path: 'pool/data', dataBlock: 8, virtualBlock: 5 } }),
    );
    // only what is copied is checked: the part past the image end may lie past the data
    expect(() =>
      plan({ ...base, runs: [{ vblock: 0, dblock: 6, length: 4 }], size: 2 * bs, dataBytes: 8 * bs }),
    ).not.toThrow();
    const overlap = [
      { vblock: 0, dblock: 0, length: 4 },
      { vblock: 3, dblock: 9, length: 1 },
    ];
    expect(() => plan({ ...base, runs: overlap, size: 16 * bs, deviceName: 'deleted device 3' })).toThrow(
      /^deleted device 3: mapping of virtual block 3 is out of order or overlaps/,
    );
    const backwards = [
      { vblock: 20, dblock: 0, length: 1 },
      { vblock: 18, dblock: 1, length: 1 },
    ];
    expect(() => plan({ ...base, runs: backwards, size: 4 * bs })).toThrow(/out of order/); // both past the end
    expect(() => plan({ ...base, runs: [{ vblock: 0, dblock: -1, length: 1 }], size: 4 * bs })).toThrow(
      /bad mapping run/,
    );
    expect(() => plan({ ...base, runs: [{ vblock: 0, dblock: 2 ** 52, length: 1 }], size: 4 * bs })).toThrow(
      /beyond a safe byte offset/,
    );
  });

  it('runs are pulled lazily: the plan of a huge device holds one window', () => {
    const bs = 512;
    let pulled = 0;
    function* many() {
      for (let v = 0; v < 1e6; v++) {
        pulled++;
        yield { vblock: v, dblock: (v * 7919) % 1e6, length: 1 };
      }
    }
    const p = planCopy({
      runs: many(),
      size: 1e6 * bs,
      blockBytes: bs,
      windowBytes: 8 * bs,
      sparse: true,
      dataPath: 'd',
      dataBytes: null,
    });
    const it = p.windows[Symbol.iterator]();
    it.next();
    expect(pulled).toBeLessThanOrEqual(9);
  });

  it('replayed on real bytes, random layouts build the same image as block-by-block copying (data file and extents)', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = rng(seed);
      const bs = [512, 1024, 4096][seed % 3]!;
      const nData = 40 + Math.floor(rnd() * 60);
      const slots = Array.from({ length: nData }, (_, i) => i).sort(() => rnd() - 0.5);
      const runs: CopyRun[] = [];
      let v = Math.floor(rnd() * 3);
      while (slots.length > 0 && rnd() < 0.95) {
        const len = 1 + Math.floor(rnd() * 3);
        const d = slots.pop()!;
        const length = Math.min(len, nData - d);
        runs.push({ vblock: v, dblock: d, length });
        v += length + (rnd() < 0.3 ? Math.floor(rnd() * 6) : 0);
      }
      const size = Math.max(0, v * bs + (Math.floor(rnd() * 7) - 3) * 512);
      const data = bytes(nData * bs, seed);
      const sparse = rnd() < 0.6;
      const W = 512 * (1 + Math.floor(rnd() * 24));
      // the data as a file, or as extents of two files (pieces of random length, in random file order)
      const useExtents = seed % 2 === 0;
      const files = new Map<string, Buffer>();
      let map: ExtentMap | undefined;
      let fileOrder = ['data'];
      if (useExtents) {
        const a = Buffer.alloc(data.length);
        const b = Buffer.alloc(data.length);
        const ext: { path: string; offset: number; length: number }[] = [];
        for (let at = 0, ia = 0, ib = 0; at < data.length;) {
          const n = Math.min(data.length - at, 512 * (1 + Math.floor(rnd() * 8)));
          if (rnd() < 0.5) {
            data.copy(a, ia, at, at + n);
            ext.push({ path: 'a', offset: ia, length: n });
            ia += n;
          } else {
            data.copy(b, ib, at, at + n);
            ext.push({ path: 'b', offset: ib, length: n });
            ib += n;
          }
          at += n;
        }
        files.set('a', a);
        files.set('b', b);
        map = new ExtentMap(ext);
        fileOrder = [];
      } else {
        files.set('data', data);
      }
      const p = planCopy({
        runs,
        size,
        blockBytes: bs,
        dataPath: 'data',
        dataBytes: data.length,
        extents: map,
        windowBytes: W,
        sparse,
        bigHoleBytes: 2 * 512,
      });
      const windows = [...p.windows];
      if (useExtents)
        for (const w of windows) for (const r of w.reads) if (!fileOrder.includes(r.path)) fileOrder.push(r.path);
      const { img, written } = replay(windows, files, { size, W: Math.floor(W / 512) * 512, sparse, fileOrder });
      const want = naiveImage(runs, size, bs, data);
      expect(img.equals(want), `seed ${seed}`).toBe(true);
      // written: every mapped byte; holes too unless sparse (never-written bytes read back as zeros on a sparse file)
      const got = Buffer.from(written.map((x) => (x === 0xee ? 0 : x)));
      expect(got.equals(want), `seed ${seed} written`).toBe(true);
      if (!sparse) expect(written.includes(0xee)).toBe(false);
      const mapped = runs.reduce(
        (s, r) => s + Math.max(0, Math.min(size, (r.vblock + r.length) * bs) - r.vblock * bs),
        0,
      );
      expect(p.totals.copiedBytes).toBe(mapped);
      expect(p.totals.copiedBytes + p.totals.holeBytes).toBe(size);
    }
  });
});
