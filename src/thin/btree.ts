/**
 * B-tree nodes and walks. Node layout (kernel dm-btree-internal.h): 32-byte header (csum, flags,
 * blocknr, nr_entries, max_entries, value_size, padding), then `max_entries` u64 keys, then the values
 * at `32 + 8*max_entries`. Internal nodes hold u64 child block numbers; `key[i]` is the lowest key
 * reachable through child i.
 *
 * Walks are bounded: a depth limit, keys strictly ascending and inside the parent's range, a child
 * that points back to an ancestor is a cycle, and a node reached twice inside one tree is cross-linked.
 */
import { DmiError } from '../errors.js';
import { LeCursor, TWO32 } from '../io/cursor.js';

export const NODE_HEADER_SIZE = 32;
export const INTERNAL_NODE = 1;
export const LEAF_NODE = 2;
/** Deeper than any real tree (≥ 84-way fan-out, ≤ 4,161,600 blocks); bounds hostile chains. */
export const MAX_DEPTH = 16;

/** Reads block `n` as a checksum-verified btree node; `what` names the tree in messages. */
export type NodeReader = (n: number, what: string) => Buffer;

export interface NodeHeader {
  blockNr: number;
  isLeaf: boolean;
  nrEntries: number;
  maxEntries: number;
  valueSize: number;
  /** Byte offset of value 0 inside the block. */
  valuesOffset: number;
}

export function nodeName(blockNr: number, what: string): string {
  return `btree node ${blockNr} (${what})`;
}

/** max_entries the kernel computes for a value size: 8 → 252, 16 → 168, 24 → 126, 4 → 336. */
export function expectedMaxEntries(valueSize: number): number {
  return Math.floor(Math.floor((4096 - NODE_HEADER_SIZE) / (8 + valueSize)) / 3) * 3;
}

/**
 * Decodes the header of the node `buf` (a 4096-byte block whose checksum was verified) and checks it:
 * flags, value size (8 for internal nodes, `leafValueSize` for leaves), max_entries, nr_entries.
 */
export function decodeNodeHeader(buf: Buffer, blockNr: number, what: string, leafValueSize: number): NodeHeader {
  // struct node_header (persistent-data/dm-btree-internal.h), in field order; csum and blocknr are verified
  // with the block (verifyBlock), not here.
  const c = new LeCursor(buf, nodeName(blockNr, what));
  c.skip(4, 'csum');
  const flags = c.u32('flags');
  c.skip(8, 'blocknr');
  const nrEntries = c.u32('nr_entries');
  const maxEntries = c.u32('max_entries');
  const valueSize = c.u32('value_size');
  const bad = (msg: string): DmiError =>
    new DmiError('BAD_INPUT', `${nodeName(blockNr, what)}: ${msg}`, { block: blockNr });
  if (flags !== INTERNAL_NODE && flags !== LEAF_NODE) throw bad(`bad node flags ${flags}`);
  const isLeaf = flags === LEAF_NODE;
  const want = isLeaf ? leafValueSize : 8;
  if (valueSize !== want)
    throw bad(`value size ${valueSize} (expected ${want} in ${isLeaf ? 'a leaf' : 'an internal node'})`);
  if (maxEntries === 0 || NODE_HEADER_SIZE + (8 + valueSize) * maxEntries > 4096 || maxEntries % 3 !== 0) {
    throw bad(`bad max_entries ${maxEntries} for value size ${valueSize}`);
  }
  if (nrEntries > maxEntries) throw bad(`nr_entries ${nrEntries} > max_entries ${maxEntries}`);
  return { blockNr, isLeaf, nrEntries, maxEntries, valueSize, valuesOffset: NODE_HEADER_SIZE + 8 * maxEntries };
}

/** Key i of a node as a number (keys ≥ 2^53 are refused as corrupt). */
export function keyAt(buf: Buffer, h: NodeHeader, i: number, what: string): number {
  const off = NODE_HEADER_SIZE + 8 * i;
  const lo = buf.readUInt32LE(off);
  const hi = buf.readUInt32LE(off + 4);
  if (hi >= 0x200000)
    throw new DmiError('BAD_INPUT', `${nodeName(h.blockNr, what)}: key ${i} is too large`, { block: h.blockNr });
  return hi * TWO32 + lo;
}

/** u64 value i of a node as a number (child pointers, roots). */
export function u64ValueAt(buf: Buffer, h: NodeHeader, i: number, what: string): number {
  const off = h.valuesOffset + h.valueSize * i;
  const lo = buf.readUInt32LE(off);
  const hi = buf.readUInt32LE(off + 4);
  if (hi >= 0x200000)
    throw new DmiError('BAD_INPUT', `${nodeName(h.blockNr, what)}: value ${i} is too large`, { block: h.blockNr });
  return hi * TWO32 + lo;
}

/**
 * Checks that the node's keys are strictly ascending and inside [lo, hi) (the range its parent gives it).
 * Returns the keys.
 */
export function checkedKeys(buf: Buffer, h: NodeHeader, what: string, lo: number, hi: number): Float64Array {
  const keys = new Float64Array(h.nrEntries);
  let prev = -1;
  for (let i = 0; i < h.nrEntries; i++) {
    const k = keyAt(buf, h, i, what);
    if (k <= prev) {
      throw new DmiError(
        'BAD_INPUT',
        `${nodeName(h.blockNr, what)}: keys out of order (key ${i} = ${k} after ${prev})`,
        { block: h.blockNr },
      );
    }
    if (k < lo || k >= hi) {
      throw new DmiError(
        'BAD_INPUT',
        `${nodeName(h.blockNr, what)}: key ${k} outside the range [${lo}, ${hi}) its parent gives it`,
        { block: h.blockNr },
      );
    }
    keys[i] = k;
    prev = k;
  }
  return keys;
}

export interface LeafVisit {
  buf: Buffer;
  header: NodeHeader;
  /** Checked keys of the leaf. */
  keys: Float64Array;
}

/**
 * The leaves of the tree at `root`, in key order; bounded and checked as described above. A yielded
 * `buf` is valid until the walk or anything else reads again (copy it to keep it).
 */
export function* leaves(read: NodeReader, root: number, leafValueSize: number, what: string): Generator<LeafVisit> {
  const seen = new Set<number>();
  interface Frame {
    block: number;
    buf: Buffer;
    header: NodeHeader;
    keys: Float64Array;
    next: number;
    hi: number;
  }
  const stack: Frame[] = [];
  const enter = (block: number, lo: number, hi: number, parent: number | null): Frame | LeafVisit => {
    if (stack.some((f) => f.block === block)) {
      throw new DmiError(
        'BAD_INPUT',
        `${nodeName(parent ?? block, what)}: child ${block} points back to an ancestor (cycle)`,
        { block: parent ?? block },
      );
    }
    if (seen.has(block)) {
      throw new DmiError(
        'BAD_INPUT',
        `${nodeName(parent ?? block, what)}: child ${block} is reached twice (cross-linked tree)`,
        { block: parent ?? block },
      );
    }
    if (stack.length >= MAX_DEPTH)
      throw new DmiError('BAD_INPUT', `${nodeName(block, what)}: tree deeper than ${MAX_DEPTH} levels`, { block });
    seen.add(block);
    const buf = read(block, what);
    const header = decodeNodeHeader(buf, block, what, leafValueSize);
    const keys = checkedKeys(buf, header, what, lo, hi);
    if (header.isLeaf) return { buf, header, keys };
    // Internal nodes outlive later reads: keep a copy.
    return { block, buf: Buffer.from(buf), header, keys, next: 0, hi };
  };
  const first = enter(root, 0, Infinity, null);
  if (!('next' in first)) {
    yield first;
    return;
  }
  stack.push(first);
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    if (f.next >= f.header.nrEntries) {
      stack.pop();
      continue;
    }
    const i = f.next++;
    const child = u64ValueAt(f.buf, f.header, i, what);
    const hi = i + 1 < f.header.nrEntries ? f.keys[i + 1]! : f.hi;
    const e = enter(child, f.keys[i]!, hi, f.block);
    if ('next' in e) stack.push(e);
    else yield e;
  }
}

/** Calls `visit(key, buf, valueOffset)` for every entry of the tree, in key order. */
export function forEachEntry(
  read: NodeReader,
  root: number,
  valueSize: number,
  what: string,
  visit: (key: number, buf: Buffer, valueOffset: number, header: NodeHeader) => void,
): void {
  for (const { buf, header, keys } of leaves(read, root, valueSize, what)) {
    for (let i = 0; i < header.nrEntries; i++) visit(keys[i]!, buf, header.valuesOffset + valueSize * i, header);
  }
}

/** Looks `key` up; returns the leaf and the value's byte offset, or null. */
export function lookup(
  read: NodeReader,
  root: number,
  key: number,
  valueSize: number,
  what: string,
): { buf: Buffer; offset: number } | null {
  let block = root;
  const path: number[] = [];
  for (;;) {
    if (path.includes(block))
      throw new DmiError(
        'BAD_INPUT',
        `${nodeName(path[path.length - 1]!, what)}: child ${block} points back to an ancestor (cycle)`,
      );
    if (path.length >= MAX_DEPTH)
      throw new DmiError('BAD_INPUT', `${nodeName(block, what)}: tree deeper than ${MAX_DEPTH} levels`);
    path.push(block);
    const buf = read(block, what);
    const h = decodeNodeHeader(buf, block, what, valueSize);
    // Last i with key[i] <= key (binary search over ascending keys).
    let lo = 0;
    let hi = h.nrEntries - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const k = keyAt(buf, h, mid, what);
      if (k <= key) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return null;
    if (h.isLeaf) {
      return keyAt(buf, h, found, what) === key ? { buf, offset: h.valuesOffset + valueSize * found } : null;
    }
    block = u64ValueAt(buf, h, found, what);
  }
}
