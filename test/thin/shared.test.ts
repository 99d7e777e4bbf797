/**
 * Shared subtrees, as the kernel makes them on snapshot: the same bottom-tree root under several
 * device ids, or the same leaf under two devices' internal nodes. thin_restore never shares nodes,
 * so the tests patch restored files (re-computing checksums) and compare with thin_ls on the patched file.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { openPool, type ThinPool } from '../../src/thin/index.js';
import {
  children,
  copyFile,
  hasThinTools,
  patchBlock,
  removeTmp,
  restore,
  setRoot,
  thinLs,
  type MappingSpec,
  type PoolSpec,
} from './helpers.js';

/** Devices 1, 2, 3 with the same 700 scattered virtual blocks; 2 and 3 remap some of them. */
function twins(): PoolSpec {
  const base: MappingSpec[] = [];
  for (let i = 0; i < 700; i++) base.push({ v: i * 3, d: i * 2 });
  let next = 2000;
  const variant = (every: number): MappingSpec[] =>
    base.map((m, i) => (i % every === 0 ? { v: m.v, d: next++, time: 1 } : m));
  return {
    time: 2,
    transaction: 5,
    nrDataBlocks: 8192,
    devices: [
      { id: 1, snapTime: 1, mappings: base },
      { id: 2, creationTime: 1, snapTime: 1, mappings: variant(7) },
      { id: 3, creationTime: 1, snapTime: 1, mappings: variant(11) },
      { id: 4, mappings: [{ v: 0, d: 7000, len: 20 }] },
    ],
  };
}

function expectSameAsThinLs(meta: string): ThinPool {
  const pool = openPool(meta);
  const ls = thinLs(meta);
  const usage = pool.usage();
  for (const [id, row] of ls)
    expect({ id, ...usage.get(id) }).toEqual({ id, mapped: row.mapped, exclusive: row.exclusive, shared: row.shared });
  expect(usage.size).toBe(ls.size);
  return pool;
}

describe.skipIf(!hasThinTools)('shared subtrees (kernel-style snapshots)', () => {
  afterAll(removeTmp);

  it('the same bottom root under two devices: counted as thin_ls does, each node read once', () => {
    const orig = restore(twins());
    const meta = copyFile(orig);
    const p0 = openPool(meta);
    const roots = new Map(p0.mappingRoots().map((r) => [r.devId, r.root]));
    expect(children(p0, roots.get(1)!).length).toBeGreaterThan(1); // multi-level
    setRoot(meta, p0, 3, roots.get(1)!); // device 3 is now a pristine snapshot of 1
    p0.close();
    const pool = expectSameAsThinLs(meta);
    const u = pool.usage();
    expect(u.get(1)!.exclusive).toBe(0);
    expect(u.get(3)!.exclusive).toBe(0);
    expect(u.get(4)!.exclusive).toBe(20);
    // Nodes of devices 1, 2 and 4 read once; device 3's own (now unreachable) tree not at all.
    const p1 = openPool(orig);
    p1.usage();
    const n3 = 1 + children(p1, roots.get(3)!).length;
    expect(pool.usageStats!.nodes).toBe(p1.usageStats!.nodes - n3);
    expect(pool.usageStats!.sharedNodes).toBe(1 + children(pool, roots.get(1)!).length);
    expect([...pool.mappingRuns(3)]).toEqual([...pool.mappingRuns(1)]);
    pool.close();
    p1.close();
  });

  it('a leaf shared between two devices below different internal nodes, and a root shared three ways', () => {
    const meta = copyFile(restore(twins()));
    const p0 = openPool(meta);
    const roots = new Map(p0.mappingRoots().map((r) => [r.devId, r.root]));
    const c1 = children(p0, roots.get(1)!);
    const c2 = children(p0, roots.get(2)!);
    expect(c1.length).toBe(c2.length); // same insert sequence, same shape and keys
    const k = c1.length - 1;
    const r2 = roots.get(2)!;
    // Device 2's last child becomes device 1's last leaf.
    patchBlock(meta, r2, 'btree', (b) => {
      const max = b.readUInt32LE(20);
      b.writeUInt32LE(c1[k]!, 32 + 8 * max + 8 * k);
    });
    setRoot(meta, p0, 4, roots.get(2)!); // device 4 shares device 2's (patched) root
    p0.close();
    const pool = expectSameAsThinLs(meta);
    expect(pool.usage().get(4)!.exclusive).toBe(0);
    pool.close();
  });
});
