/**
 * Per-device exclusive counts over the two-level mapping tree, as thin_ls defines them: a mapping
 * (device, virtual block) is exclusive when its data block is mapped by exactly one
 * (device, virtual block) pair in the whole pool.
 *
 * One pass, each node read once. For every data block an owner word: 0 = unmapped, leaf block + 1 =
 * mapped once (by that leaf), SHARED = mapped two or more times. A leaf's exclusive count is how many
 * of its data blocks it still owns. A node reached again (a subtree shared between devices, as the
 * kernel makes on snapshot) is marked shared with all its descendants, once: its leaves give up what
 * they own. Counts saturate at "two", so no per-mapping memory is needed.
 */
import { TWO32 } from '../io/cursor.js';
import { blockOfBlockTime } from './block-time.js';
import { DmiError } from '../errors.js';
import { decodeNodeHeader, MAX_DEPTH, nodeName, NODE_HEADER_SIZE } from './btree.js';

const PAGE = 65536;
const SHARED = 0xffffffff;

const UNSEEN = 0;
const ON_STACK = 1;
const INTERNAL_DONE = 2;
const LEAF_DONE = 3;
const SHARED_NODE = 4;

export interface UsageWalkInput {
  /** Reads a checksum-verified btree node; throws past the end of the metadata. */
  readNode: (n: number, what: string) => Buffer;
  metadataBlocks: number;
  dataNrBlocks: number;
  /** Top-level entries in key order: device id and bottom-tree root. */
  devices: ReadonlyArray<{ devId: number; root: number }>;
}

export interface UsageWalkResult {
  /** Exclusive mappings per device id. */
  exclusive: Map<number, number>;
  /** Mappings counted, (device, virtual block) pairs. */
  mappings: number;
  /** Distinct data blocks mapped. */
  dataBlocks: number;
  /** Distinct bottom-tree nodes read. */
  nodes: number;
  /** Nodes reached more than once (shared subtrees). */
  sharedNodes: number;
}

export function countExclusive(input: UsageWalkInput): UsageWalkResult {
  const { readNode, metadataBlocks, dataNrBlocks, devices } = input;
  const state = new Uint8Array(metadataBlocks);
  const leafOwned = new Int32Array(metadataBlocks);
  const leafDev = new Int32Array(metadataBlocks);
  const pages: (Uint32Array | undefined)[] = new Array(Math.ceil(dataNrBlocks / PAGE));
  let mappings = 0;
  let dataBlocks = 0;
  let nodes = 0;
  let sharedNodes = 0;

  const u32 = (buf: Buffer): Uint32Array => new Uint32Array(buf.buffer, buf.byteOffset, 1024);

  /** First visit of a leaf, reached by device index `dev`. Keys must lie in [lo, hi). */
  const leaf = (
    block: number,
    buf: Buffer,
    nr: number,
    maxEntries: number,
    dev: number,
    lo: number,
    hi: number,
    what: string,
  ): void => {
    const w = u32(buf);
    const kb = NODE_HEADER_SIZE / 4;
    const vb = (NODE_HEADER_SIZE + 8 * maxEntries) / 4;
    const me = block + 1;
    let owned = 0;
    let prev = -1;
    for (let i = 0; i < nr; i++) {
      const khi = w[kb + 2 * i + 1]!;
      const k = khi * TWO32 + w[kb + 2 * i]!;
      if (khi >= 0x200000 || k <= prev || k < lo || k >= hi) badKey(block, what, i, k, prev, lo, hi);
      prev = k;
      const vlo = w[vb + 2 * i]!;
      const d = blockOfBlockTime(vlo, w[vb + 2 * i + 1]!);
      if (d >= dataNrBlocks) {
        throw new DmiError(
          'BAD_INPUT',
          `${nodeName(block, what)}: virtual block ${k} maps data block ${d}, past the data device (${dataNrBlocks} blocks)`,
          { block },
        );
      }
      const p = (d / PAGE) | 0;
      let page = pages[p];
      if (page === undefined) page = pages[p] = new Uint32Array(PAGE);
      const x = d & 0xffff;
      const o = page[x]!;
      if (o === 0) {
        page[x] = me;
        owned++;
        dataBlocks++;
      } else if (o !== SHARED) {
        page[x] = SHARED;
        if (o === me) owned--;
        else leafOwned[o - 1]!--;
      }
    }
    mappings += nr;
    leafOwned[block] = owned;
    leafDev[block] = dev;
    state[block] = LEAF_DONE;
  };

  /** Node `start` (already walked) is reached again: it and everything below it become shared. */
  const markShared = (start: number, what: string): void => {
    const work = [start];
    while (work.length > 0) {
      const b = work.pop()!;
      const s = state[b];
      if (s === SHARED_NODE) continue;
      sharedNodes++;
      state[b] = SHARED_NODE;
      const buf = readNode(b, what);
      const h = decodeNodeHeader(buf, b, what, 8);
      const w = u32(buf);
      const vb = h.valuesOffset / 4;
      if (s === LEAF_DONE) {
        if (leafOwned[b] === 0) continue;
        const me = b + 1;
        for (let i = 0; i < h.nrEntries; i++) {
          const d = blockOfBlockTime(w[vb + 2 * i]!, w[vb + 2 * i + 1]!);
          const page = pages[(d / PAGE) | 0];
          if (page !== undefined && page[d & 0xffff] === me) page[d & 0xffff] = SHARED;
        }
        leafOwned[b] = 0;
      } else {
        for (let i = 0; i < h.nrEntries; i++) {
          const c = w[vb + 2 * i + 1]! * TWO32 + w[vb + 2 * i]!;
          if (c < metadataBlocks && state[c] !== SHARED_NODE) work.push(c);
        }
      }
    }
  };

  // Explicit DFS stack of internal nodes (depth ≤ MAX_DEPTH).
  const stBlock = new Float64Array(MAX_DEPTH);
  const stNext = new Int32Array(MAX_DEPTH);
  const stHi = new Float64Array(MAX_DEPTH);
  // Internal nodes on the stack are copied: block views are only valid until later reads.
  const stBuf: Uint32Array[] = Array.from({ length: MAX_DEPTH }, () => new Uint32Array(1024));
  const stNr = new Int32Array(MAX_DEPTH);
  const stVb = new Int32Array(MAX_DEPTH);

  /** Visits node `block` reached from `parent` (or the top level) with key range [lo, hi). Returns true if pushed. */
  const enter = (
    block: number,
    parent: number,
    dev: number,
    lo: number,
    hi: number,
    depth: number,
    what: string,
  ): boolean => {
    if (block >= metadataBlocks) {
      const from = parent < 0 ? `top-level mapping tree: the root of the ${what}` : `${nodeName(parent, what)}: child`;
      throw new DmiError('BAD_INPUT', `${from} ${block} is past the end of the metadata (${metadataBlocks} blocks)`, {
        block: parent < 0 ? block : parent,
      });
    }
    const s = state[block]!;
    if (s === ON_STACK) {
      throw new DmiError('BAD_INPUT', `${nodeName(parent, what)}: child ${block} points back to an ancestor (cycle)`, {
        block: parent,
      });
    }
    if (s !== UNSEEN) {
      markShared(block, what);
      return false;
    }
    if (depth >= MAX_DEPTH)
      throw new DmiError('BAD_INPUT', `${nodeName(block, what)}: tree deeper than ${MAX_DEPTH} levels`, { block });
    const buf = readNode(block, what);
    const h = decodeNodeHeader(buf, block, what, 8);
    nodes++;
    if (h.isLeaf) {
      leaf(block, buf, h.nrEntries, h.maxEntries, dev, lo, hi, what);
      return false;
    }
    const w = u32(buf);
    // Keys of an internal node: ascending, inside [lo, hi).
    let prev = -1;
    for (let i = 0; i < h.nrEntries; i++) {
      const khi = w[8 + 2 * i + 1]!;
      const k = khi * TWO32 + w[8 + 2 * i]!;
      if (khi >= 0x200000 || k <= prev || k < lo || k >= hi) badKey(block, what, i, k, prev, lo, hi);
      prev = k;
    }
    state[block] = ON_STACK;
    stBlock[depth] = block;
    stNext[depth] = 0;
    stHi[depth] = hi;
    stBuf[depth]!.set(w);
    stNr[depth] = h.nrEntries;
    stVb[depth] = h.valuesOffset / 4;
    return true;
  };

  for (let di = 0; di < devices.length; di++) {
    const { devId, root } = devices[di]!;
    const what = `mapping tree of device ${devId}`;
    if (!enter(root, -1, di, 0, Infinity, 0, what)) continue;
    let depth = 0;
    while (depth >= 0) {
      const i = stNext[depth]!;
      if (i >= stNr[depth]!) {
        state[stBlock[depth]!] = INTERNAL_DONE;
        depth--;
        continue;
      }
      stNext[depth] = i + 1;
      const w = stBuf[depth]!;
      const vb = stVb[depth]!;
      const chi = w[vb + 2 * i + 1]!;
      const child = chi * TWO32 + w[vb + 2 * i]!;
      const lo = w[8 + 2 * i + 1]! * TWO32 + w[8 + 2 * i]!;
      const hi = i + 1 < stNr[depth]! ? w[8 + 2 * i + 3]! * TWO32 + w[8 + 2 * i + 2]! : stHi[depth]!;
      if (enter(child, stBlock[depth]!, di, lo, hi, depth + 1, what)) depth++;
    }
  }

  const exclusive = new Map<number, number>();
  const perDev = new Float64Array(devices.length);
  for (let b = 0; b < metadataBlocks; b++) if (state[b] === LEAF_DONE) perDev[leafDev[b]!]! += leafOwned[b]!;
  for (let di = 0; di < devices.length; di++) exclusive.set(devices[di]!.devId, perDev[di]!);
  return { exclusive, mappings, dataBlocks, nodes, sharedNodes };
}

function badKey(block: number, what: string, i: number, k: number, prev: number, lo: number, hi: number): never {
  const msg =
    k >= 2 ** 53
      ? `key ${i} is too large`
      : k <= prev
        ? `keys out of order (key ${i} = ${k} after ${prev})`
        : `key ${k} outside the range [${lo}, ${hi}) its parent gives it`;
  throw new DmiError('BAD_INPUT', `${nodeName(block, what)}: ${msg}`, { block });
}
