/**
 * The usage walk in two threads (thin/usage.ts): the worker thread runs the kernel from its source text. Large pools
 * use it on their own; DMINSPECT_USAGE_WORKER makes small fixtures use it (`only`: the worker walks every device,
 * `always`: both threads share the devices, `never`: this thread alone). Same numbers, same node counts, same
 * verified blocks, same one-line errors, whichever thread walked.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DmiError } from '../../src/errors.js';
import { openPool } from '../../src/thin/index.js';
import {
  children,
  copyFile,
  hasThinTools,
  patchBlock,
  randomPool,
  removeTmp,
  restore,
  setRoot,
  thinLs,
} from './helpers.js';

const MODES = ['never', 'only', 'always'] as const;

function inMode<T>(mode: (typeof MODES)[number], fn: () => T): T {
  const old = process.env.DMINSPECT_USAGE_WORKER;
  process.env.DMINSPECT_USAGE_WORKER = mode;
  try {
    return fn();
  } finally {
    if (old === undefined) delete process.env.DMINSPECT_USAGE_WORKER;
    else process.env.DMINSPECT_USAGE_WORKER = old;
  }
}

function walk(meta: string) {
  const pool = openPool(meta);
  try {
    const usage = Object.fromEntries(pool.usage());
    return { usage, stats: pool.usageStats!, verified: pool.stats.blocksVerified };
  } finally {
    pool.close();
  }
}

function errorOf(meta: string): string {
  const pool = openPool(meta);
  try {
    pool.usage();
  } catch (e) {
    expect(e).toBeInstanceOf(DmiError);
    expect((e as DmiError).message).not.toContain('\n');
    return `${(e as DmiError).code}: ${(e as DmiError).message}`;
  } finally {
    pool.close();
  }
  throw new Error('no error');
}

describe.skipIf(!hasThinTools)('the usage walk in a worker thread', () => {
  afterAll(removeTmp);

  it('same numbers as one thread and as thin_ls, with subtrees shared across devices', () => {
    const meta = copyFile(restore(randomPool(11, 3, 9, 900)));
    const p0 = openPool(meta);
    const roots = p0.mappingRoots().filter((r) => children(p0, r.root).length > 1);
    expect(roots.length).toBeGreaterThan(6);
    expect(children(p0, roots[0]!.root).length).toBeGreaterThan(1);
    // Kernel-style snapshots: the last two devices share the first device's and the second device's trees.
    setRoot(meta, p0, roots[roots.length - 1]!.devId, roots[0]!.root);
    setRoot(meta, p0, roots[roots.length - 2]!.devId, roots[1]!.root);
    p0.close();

    const ls = thinLs(meta);
    const results = MODES.map((m) => inMode(m, () => walk(meta)));
    for (const [id, row] of ls)
      expect(results[0]!.usage[id]).toEqual({ mapped: row.mapped, exclusive: row.exclusive, shared: row.shared });
    expect(results[0]!.stats.worker).toBe(false);
    expect(results[1]!.stats.worker).toBe(true); // `only`: the worker did it all
    expect(results[0]!.stats.sharedNodes).toBeGreaterThan(0);
    for (const r of results.slice(1)) {
      expect(r.usage).toEqual(results[0]!.usage);
      expect({ ...r.stats, worker: false }).toEqual(results[0]!.stats);
      expect(r.verified).toBe(results[0]!.verified);
    }
  });

  it('a data block mapped twice by one device, by two and by three: thin_ls numbers in every mode', () => {
    // Every case of the owner word in the leaf loop: fresh, taken from this device (v0 and v1 of device 1 on d10),
    // from another device (d12, d13), already shared (d12 a third time), on leaves of both threads.
    const meta = restore({
      devices: [
        {
          id: 1,
          mappings: [
            { v: 0, d: 10 },
            { v: 1, d: 10 },
            { v: 2, d: 11 },
            { v: 3, d: 12 },
          ],
        },
        {
          id: 2,
          mappings: [
            { v: 0, d: 12 },
            { v: 1, d: 13 },
            { v: 2, d: 14 },
            { v: 3, d: 14 },
          ],
        },
        {
          id: 3,
          mappings: [
            { v: 0, d: 13 },
            { v: 1, d: 15 },
            { v: 2, d: 12 },
            { v: 5, d: 100, len: 300 },
          ],
        },
        {
          id: 4,
          mappings: [
            { v: 7, d: 400, len: 300 },
            { v: 400, d: 399 },
            { v: 401, d: 100 },
          ],
        },
      ],
    });
    const ls = thinLs(meta);
    expect([...ls.values()].map((r) => r.exclusive)).toEqual([1, 0, 299, 300]);
    for (const mode of MODES) {
      const r = inMode(mode, () => walk(meta));
      for (const [id, row] of ls)
        expect(r.usage[id], `${mode}: device ${id}`).toEqual({
          mapped: row.mapped,
          exclusive: row.exclusive,
          shared: row.shared,
        });
    }
  });

  it('a leaf whose keys pass 2^31 and 2^32 midway (the fast loop hands over mid-leaf): thin_ls numbers', () => {
    // One leaf: 100 small virtual blocks, then blocks at 2^31 and past 2^32; device 2 shares one block of each part.
    const meta = restore({
      devices: [
        {
          id: 1,
          mappings: [
            { v: 0, d: 10, len: 100 },
            { v: 2 ** 31, d: 200, len: 10 },
            { v: 2 ** 32 + 7, d: 300, len: 5 },
          ],
        },
        {
          id: 2,
          mappings: [
            { v: 0, d: 50 },
            { v: 1, d: 203 },
            { v: 2, d: 302 },
            { v: 3, d: 400 },
          ],
        },
      ],
    });
    const ls = thinLs(meta);
    expect([...ls.values()].map((r) => r.exclusive)).toEqual([112, 1]);
    for (const mode of MODES) {
      const r = inMode(mode, () => walk(meta));
      expect(r.stats.mappings).toBe(119);
      for (const [id, row] of ls)
        expect(r.usage[id], `${mode}: device ${id}`).toEqual({
          mapped: row.mapped,
          exclusive: row.exclusive,
          shared: row.shared,
        });
    }
  });

  it('a corrupt node met in the worker gives the same one-line error as in this thread', () => {
    const orig = restore(randomPool(12, 2, 5, 900));
    const p = openPool(orig);
    const roots = p.mappingRoots().filter((r) => children(p, r.root).length > 1);
    expect(roots.length).toBeGreaterThan(4);
    const last = roots[roots.length - 1]!;
    const leaf = children(p, last.root)[1]!;
    const inner = roots[2]!;
    const kids = children(p, inner.root);
    p.close();

    const cases: { meta: string; want: RegExp }[] = [];
    // A flipped byte: checksum mismatch.
    const flipped = copyFile(orig);
    patchBlock(flipped, leaf, null, (b) => b.writeUInt8(b.readUInt8(4000) ^ 0xff, 4000));
    cases.push({
      meta: flipped,
      want: new RegExp(`^BAD_INPUT: btree node ${leaf} \\(mapping tree of device ${last.devId}\\): checksum mismatch`),
    });
    // A child pointing back at its parent: a cycle.
    const cyclic = copyFile(orig);
    patchBlock(cyclic, inner.root, 'btree', (b) => {
      const max = b.readUInt32LE(20);
      b.writeUInt32LE(inner.root, 32 + 8 * max + 8 * (kids.length - 1));
    });
    cases.push({
      meta: cyclic,
      want: new RegExp(
        `^BAD_INPUT: btree node ${inner.root} \\(mapping tree of device ${inner.devId}\\): child ${inner.root} points back to an ancestor \\(cycle\\)$`,
      ),
    });
    // Keys out of order in a leaf.
    const unordered = copyFile(orig);
    patchBlock(unordered, leaf, 'btree', (b) => b.writeUInt32LE(0, 32 + 8 * 5));
    cases.push({
      meta: unordered,
      want: /^BAD_INPUT: btree node \d+ \(mapping tree of device \d+\): keys out of order/,
    });

    for (const { meta, want } of cases) {
      const errors = MODES.map((m) => inMode(m, () => errorOf(meta)));
      expect(errors[0]).toMatch(want);
      expect(errors[1]).toBe(errors[0]);
      expect(errors[2]).toBe(errors[0]);
    }
  });
});
