/**
 * Stale metadata: btree nodes the pool no longer uses but has not overwritten yet, and the deleted thin
 * devices they still describe (thin-metadata.md §12).
 *
 * dm-thin metadata is copy-on-write: every change writes new copies of the nodes on its path and frees the
 * old ones at commit, without wiping them. Deleting a device removes its key from the top-level mapping tree
 * and the details tree; the nodes of its bottom-level mapping tree stay in the metadata until the space map
 * hands their blocks out again. So free blocks hold earlier versions of the top-level leaves (device id →
 * bottom-tree root) naming devices the pool no longer has, the roots of those devices' mapping trees, and
 * earlier details leaves (device id → transaction id, creation and snapshot times).
 *
 * One sequential pass over every metadata block finds the valid btree nodes (checksum with the btree salt,
 * the block number field equal to the block's place, a sane header: flags, value size, max_entries computed
 * from it as the kernel does, nr_entries ≤ max_entries). A value-size-8 leaf whose keys are device ids
 * (< 2^24) and whose values all point at valid nodes is a candidate top-level leaf; each entry naming a
 * device id that the live pool does not have (neither in its details nor in its top-level tree) is a
 * candidate version of a deleted device, and counts only if its root walks as a bottom-level mapping tree
 * (btree.ts bounds: depth, cycles, key order and ranges; every data block inside the data device; every
 * block time ≤ the pool's time). Value-size-24 leaves are details records.
 *
 * Versions of one device (distinct roots) are ordered by copy-on-write lineage: a later version maps a
 * virtual block to a newer-time data block where the earlier maps an older one (a copy-on-write break from
 * a snapshot origin), or adds mappings. Ties fall back to mapped count and highest time.
 *
 * Memory: one byte per metadata block (kind), the candidate entries, and each accepted version's mappings as
 * typed arrays. Time: one sequential read of the metadata; the CRC is computed only for blocks whose header
 * (block number, flags) already looks like a btree node. Walks of candidate trees share a node budget.
 *
 * Data block status (classifyBlocks): where each mapping's data block stands now, from the live pool:
 * `shared` (a live device maps the same virtual block to the same data block with the same time, and that
 * mapping is the same provisioning: inherited by the live device or by the deleted one), `free` (reference
 * count 0: intact unless something wrote it since), `reused` (reference count > 0 and no live mapping is the
 * same provisioning: another device owns it now, its bytes are not the deleted device's). Whether a free
 * block was discarded (a hole, or zeros) needs the data file: the caller checks that.
 */
import { DmiError } from '../errors.js';
import {
  decodeNodeHeader,
  expectedMaxEntries,
  INTERNAL_NODE,
  LEAF_NODE,
  MAX_DEPTH,
  NODE_HEADER_SIZE,
  leaves,
} from './btree.js';
import { rawChecksum, SALT } from './checksum.js';
import { decodeDeviceDetails, MAX_THIN_DEVICE_ID, type DeviceDetails } from './details.js';
import type { MappingRun, ThinPool } from './pool.js';
import { decodeMetadataIndex, ENTRIES_PER_BITMAP, markUsedEntries, nrBitmaps } from './space-map.js';

/** Kinds of the one-byte-per-block map. */
export const NODE_NONE = 0;
export const NODE_INTERNAL = 1;
export const NODE_LEAF8 = 2;
export const NODE_LEAF24 = 3;
export const NODE_LEAF16 = 4;
export const NODE_LEAF4 = 5;

const TWO32 = 2 ** 32;
/** flags[]: a valid node points at this block / the block looks like a top-level leaf. */
const REFERENCED = 1;
const TOP_LEVEL = 2;
/** Bounds on what hostile metadata can make the scan keep: candidate top-level entries, details records. */
const MAX_CANDIDATES = 1 << 22;
const MAX_DETAILS = 1 << 20;

export interface StaleScanOptions {
  /** Called every few thousand blocks with (blocks scanned, total). */
  onProgress?: (done: number, total: number) => void;
  /** Most versions kept per device (the rest are counted in `dropped`). Default 64. */
  maxVersionsPerDevice?: number;
  /** Node reads allowed for all candidate-tree walks together (default 8 × metadata blocks + 100000). */
  walkBudget?: number;
  /** Most unattributed trees walked (default 1000). */
  maxUnattributed?: number;
}

/** The mappings of one version, in virtual-block order. */
export interface VersionMappings {
  vblocks: Float64Array;
  dblocks: Float64Array;
  times: Uint32Array;
}

export interface DeletedVersion {
  /** 1 = oldest in lineage order. */
  version: number;
  /** Metadata block of the bottom-level tree root. */
  root: number;
  mappedBlocks: number;
  /** Highest block time among the mappings (null if it maps nothing). */
  highestTime: number | null;
  /** Highest mapped virtual block (null if it maps nothing). */
  highestVblock: number | null;
  /** The newest version in lineage order. */
  newest: boolean;
  /** Metadata blocks of the stale top-level leaves that name this root for the device. */
  namedBy: number[];
  /** Whether every metadata block of the tree is free in the live space map (false: some are in use again). */
  allFree: boolean;
  mappings: VersionMappings;
}

export interface DeletedDevice {
  devId: number;
  /** Distinct details records found for the id (newest first: highest snapshot time, then mapped blocks). */
  details: DeviceDetails[];
  /** Oldest → newest. */
  versions: DeletedVersion[];
  /** Candidate roots that did not walk as a mapping tree (overwritten, or not a tree), with why. */
  rejected: { root: number; reason: string }[];
  /** Versions beyond maxVersionsPerDevice, not kept. */
  dropped: number;
  /** Whether the lineage order is total (every consecutive pair ordered by evidence, not by a tie-break). */
  lineage: 'ordered' | 'tie-broken' | 'single';
}

export interface UnattributedTree {
  root: number;
  mappedBlocks: number;
  highestTime: number | null;
  highestVblock: number;
}

export interface StaleScanResult {
  metadataBlocks: number;
  /** Valid btree nodes found, and how many of them are free in the live metadata space map. */
  btreeNodes: number;
  freeBtreeNodes: number;
  /** Metadata blocks in use according to the live metadata space map. */
  allocatedBlocks: number;
  /** Valid leaves that look like top-level mapping leaves / details leaves. */
  topLevelLeaves: number;
  detailsLeaves: number;
  /** Device ids the live pool has (never reported as deleted). */
  liveDeviceIds: number[];
  devices: DeletedDevice[];
  /** Details records of deleted ids for which no mapping tree was found. */
  detailsOnly: DeviceDetails[];
  /**
   * Free mapping-tree roots no valid node points at (their top-level entry was overwritten): the device id is
   * unknown, and one may be an older version of a live device. At most 100 listed; `unattributedCount` all.
   */
  unattributed: UnattributedTree[];
  unattributedCount: number;
  /** A bound was reached (node walk budget, candidate entries, details records): some candidates were not kept or walked. */
  truncated: boolean;
  nodesWalked: number;
}

/** Growable u32/f64 columns without per-entry objects. */
class Column<T extends Float64Array | Uint32Array> {
  private a: T;
  length = 0;
  constructor(private readonly make: (n: number) => T) {
    this.a = make(64);
  }
  push(v: number): void {
    if (this.length === this.a.length) {
      const b = this.make(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.length++] = v;
  }
  get(i: number): number {
    return this.a[i]!;
  }
  done(): T {
    return this.a.slice(0, this.length) as T;
  }
}

/** The live metadata space map as one bit per block (allocated or not). */
export function metadataAllocated(pool: ThinPool): Uint8Array {
  const n = pool.metadataNrBlocks;
  const out = new Uint8Array(n);
  const root = pool.liveSuperblock.metadataSpaceMapRoot;
  const idx = decodeMetadataIndex(
    pool.block(root.bitmapRoot, 'index', 'metadata space map'),
    root.bitmapRoot,
    nrBitmaps(root.nrBlocks),
  );
  idx.forEach((e, i) => {
    const first = i * ENTRIES_PER_BITMAP;
    markUsedEntries(pool.block(e.blockNr, 'bitmap', `metadata space map bitmap ${i}`), n - first, out, first);
  });
  return out;
}

/** The kind of a block if it is a valid btree node (NODE_NONE otherwise). Cheap header checks before the CRC. */
export function classifyNode(buf: Buffer, blockNr: number): number {
  const flags = buf.readUInt32LE(4);
  if (flags !== INTERNAL_NODE && flags !== LEAF_NODE) return NODE_NONE;
  if (buf.readUInt32LE(8) !== blockNr % TWO32 || buf.readUInt32LE(12) !== Math.floor(blockNr / TWO32)) return NODE_NONE;
  const nr = buf.readUInt32LE(16);
  const max = buf.readUInt32LE(20);
  const vs = buf.readUInt32LE(24);
  if (vs !== 8 && vs !== 24 && vs !== 16 && vs !== 4) return NODE_NONE;
  if (flags === INTERNAL_NODE && vs !== 8) return NODE_NONE;
  if (max !== expectedMaxEntries(vs) || nr > max) return NODE_NONE;
  if ((rawChecksum(buf) ^ SALT.btree) >>> 0 !== buf.readUInt32LE(0)) return NODE_NONE;
  if (flags === INTERNAL_NODE) return NODE_INTERNAL;
  return vs === 8 ? NODE_LEAF8 : vs === 24 ? NODE_LEAF24 : vs === 16 ? NODE_LEAF16 : NODE_LEAF4;
}

function u64At(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off + 4) * TWO32 + buf.readUInt32LE(off);
}

/** Copy-on-write order of two versions: > 0 when `b` is later than `a`, < 0 when earlier, 0 when no evidence. */
export function lineageCompare(a: VersionMappings, b: VersionMappings): number {
  let i = 0;
  let j = 0;
  let aNewer = 0;
  let bNewer = 0;
  let onlyA = 0;
  let onlyB = 0;
  const na = a.vblocks.length;
  const nb = b.vblocks.length;
  while (i < na || j < nb) {
    const va = i < na ? a.vblocks[i]! : Infinity;
    const vb = j < nb ? b.vblocks[j]! : Infinity;
    if (va === vb) {
      if (a.dblocks[i] !== b.dblocks[j] || a.times[i] !== b.times[j]) {
        if (b.times[j]! > a.times[i]!) bNewer++;
        else if (a.times[i]! > b.times[j]!) aNewer++;
      }
      i++;
      j++;
    } else if (va < vb) {
      onlyA++;
      i++;
    } else {
      onlyB++;
      j++;
    }
  }
  if (bNewer !== aNewer) return bNewer > aNewer ? 1 : -1;
  if (onlyB > 0 && onlyA === 0) return 1;
  if (onlyA > 0 && onlyB === 0) return -1;
  return 0;
}

function maxOf(a: Uint32Array): number | null {
  let m: number | null = null;
  for (let i = 0; i < a.length; i++) if (m === null || a[i]! > m) m = a[i]!;
  return m;
}

/** Scans every metadata block once and rebuilds the deleted devices; see the module comment. */
export function scanStale(pool: ThinPool, opts: StaleScanOptions = {}): StaleScanResult {
  const n = pool.metadataNrBlocks;
  const maxVersions = opts.maxVersionsPerDevice ?? 64;
  let budget = opts.walkBudget ?? 8 * n + 100000;
  const maxUnattributed = opts.maxUnattributed ?? 1000;
  const liveIds = new Set<number>();
  for (const id of pool.devices().keys()) liveIds.add(id);
  for (const r of pool.mappingRoots()) liveIds.add(r.devId);
  const allocated = metadataAllocated(pool);

  // ---- pass 1: every block --------------------------------------------------------------------------
  const kind = new Uint8Array(n);
  const flags = new Uint8Array(n);
  const topBlock = new Column((k) => new Uint32Array(k));
  const topDev = new Column((k) => new Uint32Array(k));
  const topRoot = new Column((k) => new Float64Array(k));
  const details = new Map<number, DeviceDetails[]>();
  let nDetails = 0;
  let truncated = false;
  let btreeNodes = 0;
  let freeBtreeNodes = 0;
  let topLevelLeaves = 0;
  let detailsLeaves = 0;
  const step = 4096;
  for (let b = 1; b < n; b++) {
    if (opts.onProgress && b % step === 0) opts.onProgress(b, n);
    const buf = pool.rawBlock(b);
    const k = classifyNode(buf, b);
    if (k === NODE_NONE) continue;
    kind[b] = k;
    btreeNodes++;
    if (allocated[b] === 0) freeBtreeNodes++;
    const nr = buf.readUInt32LE(16);
    if (k === NODE_INTERNAL) {
      const vo = NODE_HEADER_SIZE + 8 * expectedMaxEntries(8);
      for (let i = 0; i < nr; i++) {
        const c = u64At(buf, vo + 8 * i);
        if (c < n) flags[c]! |= REFERENCED;
      }
    }
    if (k === NODE_LEAF8 && nr > 0) {
      const vo = NODE_HEADER_SIZE + 8 * expectedMaxEntries(8);
      let ok = true;
      let prev = -1;
      for (let i = 0; i < nr && ok; i++) {
        const key = u64At(buf, NODE_HEADER_SIZE + 8 * i);
        const v = u64At(buf, vo + 8 * i);
        if (key > MAX_THIN_DEVICE_ID || key <= prev || v === 0 || v >= n) ok = false;
        prev = key;
      }
      if (ok) {
        topLevelLeaves++;
        flags[b]! |= TOP_LEVEL;
        for (let i = 0; i < nr; i++) {
          const key = u64At(buf, NODE_HEADER_SIZE + 8 * i);
          flags[u64At(buf, vo + 8 * i)]! |= REFERENCED;
          if (liveIds.has(key)) continue;
          if (topDev.length >= MAX_CANDIDATES) {
            truncated = true;
            break;
          }
          topBlock.push(b);
          topDev.push(key);
          topRoot.push(u64At(buf, vo + 8 * i));
        }
      }
    } else if (k === NODE_LEAF24 && nr > 0) {
      detailsLeaves++;
      const vo = NODE_HEADER_SIZE + 8 * expectedMaxEntries(24);
      let prev = -1;
      for (let i = 0; i < nr; i++) {
        const key = u64At(buf, NODE_HEADER_SIZE + 8 * i);
        if (key > MAX_THIN_DEVICE_ID || key <= prev) break;
        prev = key;
        if (liveIds.has(key)) continue;
        let d: DeviceDetails;
        try {
          d = decodeDeviceDetails(key, buf, vo + 24 * i, `btree node ${b} (stale device details)`);
        } catch {
          continue;
        }
        const list = details.get(key) ?? [];
        if (
          !list.some(
            (x) =>
              x.mappedBlocks === d.mappedBlocks &&
              x.transactionId === d.transactionId &&
              x.creationTime === d.creationTime &&
              x.snapshottedTime === d.snapshottedTime,
          )
        ) {
          if (list.length >= 64 || nDetails >= MAX_DETAILS) continue;
          list.push(d);
          nDetails++;
          details.set(key, list);
        }
      }
    }
  }
  opts.onProgress?.(n, n);

  // ---- candidates: device id → roots (pointing at valid nodes) ----------------------------------------
  const cand = new Map<number, Map<number, number[]>>();
  for (let i = 0; i < topDev.length; i++) {
    const root = topRoot.get(i);
    const rk = kind[root]!;
    if (rk !== NODE_INTERNAL && rk !== NODE_LEAF8) continue;
    const dev = topDev.get(i);
    let roots = cand.get(dev);
    if (!roots) cand.set(dev, (roots = new Map()));
    const named = roots.get(root) ?? [];
    if (named.length < 16) named.push(topBlock.get(i));
    roots.set(root, named);
  }

  const dataNr = pool.dataNrBlocks;
  const poolTime = pool.liveSuperblock.time;
  let nodesWalked = 0;
  /** The mappings of the bottom-level tree at `root`; throws DmiError if it is not (any more) a whole valid tree. */
  const walkTree = (
    root: number,
    what: string,
    refuseTopLevel = false,
  ): { mappings: VersionMappings; allFree: boolean } => {
    const vb = new Column((k) => new Float64Array(k));
    const db = new Column((k) => new Float64Array(k));
    const tm = new Column((k) => new Uint32Array(k));
    let allFree = true;
    const read = (blk: number, w: string): Buffer => {
      if (--budget < 0) throw new DmiError('BAD_INPUT', `${w}: walk budget exhausted`);
      nodesWalked++;
      if (kind[blk] !== NODE_INTERNAL && kind[blk] !== NODE_LEAF8)
        throw new DmiError('BAD_INPUT', `${w}: block ${blk} is not a valid btree node now`);
      if (allocated[blk]) allFree = false;
      // an orphan internal node of an old top-level tree would read its device-id leaves as mappings
      if (refuseTopLevel && flags[blk]! & TOP_LEVEL)
        throw new DmiError('BAD_INPUT', `${w}: block ${blk} looks like a top-level leaf`);
      return pool.node(blk, w);
    };
    for (const { buf, header, keys } of leaves(read, root, 8, what)) {
      const vo = header.valuesOffset;
      for (let i = 0; i < header.nrEntries; i++) {
        const lo = buf.readUInt32LE(vo + 8 * i);
        const d = buf.readUInt32LE(vo + 8 * i + 4) * 256 + (lo >>> 24);
        const t = lo & 0xffffff;
        if (d >= dataNr)
          throw new DmiError('BAD_INPUT', `${what}: data block ${d} past the data device (${dataNr} blocks)`);
        if (t > poolTime) throw new DmiError('BAD_INPUT', `${what}: block time ${t} after the pool's time ${poolTime}`);
        vb.push(keys[i]!);
        db.push(d);
        tm.push(t);
      }
    }
    return { mappings: { vblocks: vb.done(), dblocks: db.done(), times: tm.done() }, allFree };
  };
  const devices: DeletedDevice[] = [];
  for (const devId of [...cand.keys()].sort((a, b) => a - b)) {
    const roots = cand.get(devId)!;
    const dev: DeletedDevice = { devId, details: [], versions: [], rejected: [], dropped: 0, lineage: 'single' };
    const seenContent = new Map<string, DeletedVersion>();
    for (const [root, namedBy] of [...roots.entries()].sort((a, b) => a[0] - b[0])) {
      if (budget <= 0) {
        truncated = true;
        break;
      }
      if (dev.versions.length >= maxVersions) {
        dev.dropped++;
        continue;
      }
      let walked: { mappings: VersionMappings; allFree: boolean };
      try {
        walked = walkTree(root, `stale mapping tree of deleted device ${devId} at block ${root}`);
      } catch (e) {
        if (!(e instanceof DmiError)) throw e;
        if (e.message.includes('walk budget exhausted')) {
          truncated = true;
          break;
        }
        dev.rejected.push({ root, reason: e.message });
        continue;
      }
      const { mappings, allFree } = walked;
      // Identical content under two roots (a node copied without change) is one version.
      const key = contentKey(mappings);
      const same = seenContent.get(key);
      if (same) {
        same.namedBy.push(...namedBy);
        continue;
      }
      const v: DeletedVersion = {
        version: 0,
        root,
        mappedBlocks: mappings.vblocks.length,
        highestTime: maxOf(mappings.times),
        highestVblock: mappings.vblocks.length ? mappings.vblocks[mappings.vblocks.length - 1]! : null,
        newest: false,
        namedBy: [...namedBy],
        allFree,
        mappings,
      };
      seenContent.set(key, v);
      dev.versions.push(v);
    }
    if (dev.versions.length === 0 && dev.rejected.length === 0) continue;
    orderVersions(dev);
    dev.details = (details.get(devId) ?? []).sort(
      (a, b) =>
        b.snapshottedTime - a.snapshottedTime || b.mappedBlocks - a.mappedBlocks || b.transactionId - a.transactionId,
    );
    details.delete(devId);
    devices.push(dev);
  }
  // Free roots nothing valid points at: mapping trees whose top-level entry is gone (device id unknown).
  const unattributed: UnattributedTree[] = [];
  let unattributedCount = 0;
  const known = new Set<string>();
  for (const d of devices) for (const v of d.versions) known.add(contentKey(v.mappings));
  for (let b = 1; b < n && !truncated; b++) {
    if ((kind[b] !== NODE_INTERNAL && kind[b] !== NODE_LEAF8) || allocated[b] || flags[b]) continue;
    if (unattributedCount >= maxUnattributed) break;
    let walked: { mappings: VersionMappings; allFree: boolean };
    try {
      walked = walkTree(b, `stale mapping tree at block ${b} (device unknown)`, true);
    } catch (e) {
      if (!(e instanceof DmiError)) throw e;
      if (e.message.includes('walk budget exhausted')) truncated = true;
      continue;
    }
    const m = walked.mappings;
    if (m.vblocks.length === 0 || known.has(contentKey(m))) continue;
    unattributedCount++;
    if (unattributed.length < 100) {
      unattributed.push({
        root: b,
        mappedBlocks: m.vblocks.length,
        highestTime: maxOf(m.times),
        highestVblock: m.vblocks[m.vblocks.length - 1]!,
      });
    }
  }
  const detailsOnly = [...details.entries()].sort((a, b) => a[0] - b[0]).flatMap(([, l]) => l);
  let allocatedBlocks = 0;
  for (let i = 0; i < n; i++) allocatedBlocks += allocated[i]!;
  return {
    metadataBlocks: n,
    btreeNodes,
    freeBtreeNodes,
    allocatedBlocks,
    topLevelLeaves,
    detailsLeaves,
    liveDeviceIds: [...liveIds].sort((a, b) => a - b),
    devices,
    detailsOnly,
    unattributed,
    unattributedCount,
    truncated,
    nodesWalked,
  };
}

function contentKey(m: VersionMappings): string {
  // FNV-1a over the three columns: equal content, equal key (collisions only merge on equal length too).
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h ^= x & 0xffff;
    h = Math.imul(h, 16777619);
    h ^= x >>> 16;
    h = Math.imul(h, 16777619);
  };
  for (let i = 0; i < m.vblocks.length; i++) {
    mix(m.vblocks[i]! % TWO32);
    mix(m.dblocks[i]! % TWO32);
    mix(m.times[i]!);
  }
  return `${m.vblocks.length}:${(h >>> 0).toString(16)}`;
}

/** Orders `dev.versions` oldest → newest by copy-on-write lineage, numbers them and marks the newest. */
function orderVersions(dev: DeletedDevice): void {
  const vs = dev.versions;
  if (vs.length === 0) return;
  const wins = new Map<DeletedVersion, number>();
  for (const v of vs) wins.set(v, 0);
  for (let i = 0; i < vs.length; i++) {
    for (let j = i + 1; j < vs.length; j++) {
      const c = lineageCompare(vs[i]!.mappings, vs[j]!.mappings);
      if (c > 0) wins.set(vs[j]!, wins.get(vs[j]!)! + 1);
      else if (c < 0) wins.set(vs[i]!, wins.get(vs[i]!)! + 1);
    }
  }
  vs.sort(
    (a, b) =>
      wins.get(a)! - wins.get(b)! ||
      a.mappedBlocks - b.mappedBlocks ||
      (a.highestTime ?? -1) - (b.highestTime ?? -1) ||
      a.root - b.root,
  );
  let ordered = true;
  for (let i = 1; i < vs.length; i++) if (lineageCompare(vs[i - 1]!.mappings, vs[i]!.mappings) <= 0) ordered = false;
  dev.lineage = vs.length === 1 ? 'single' : ordered ? 'ordered' : 'tie-broken';
  vs.forEach((v, i) => {
    v.version = i + 1;
    v.newest = i === vs.length - 1;
  });
}

/** Coalesced mapping runs of a version (for the exporter), virtual-block order. */
export function* versionRuns(m: VersionMappings): Generator<MappingRun> {
  let run: MappingRun | null = null;
  for (let i = 0; i < m.vblocks.length; i++) {
    const v = m.vblocks[i]!;
    const d = m.dblocks[i]!;
    if (run && run.vblock + run.length === v && run.dblock + run.length === d) run.length++;
    else {
      if (run) yield run;
      run = { vblock: v, dblock: d, length: 1 };
    }
  }
  if (run) yield run;
}

// ---- where the data blocks stand now ----------------------------------------------------------------

export const BLOCK_SHARED = 1;
export const BLOCK_FREE = 2;
export const BLOCK_REUSED = 3;

/** For every data block some version maps: the live mappings of it that matter for the shared/reused call. */
export interface LiveIndex {
  /** data block → live (vblock, time, whether the mapping predates a device reaching it) triples. */
  byData: Map<number, { v: number; t: number; inherited: boolean }[]>;
  /** data block → reference count in the live data space map. */
  refcounts: Map<number, number>;
  nodesRead: number;
}

/**
 * Walks every live device's mapping tree once (a subtree shared between devices is read once, credited to
 * the device created last of those reaching it) and keeps the live mappings of the data blocks the deleted
 * versions map, with the data space map counts of those blocks.
 */
export function buildLiveIndex(pool: ThinPool, devices: DeletedDevice[]): LiveIndex {
  const interest = new Set<number>();
  for (const d of devices) for (const v of d.versions) for (const b of v.mappings.dblocks) interest.add(b);
  const byData = new Map<number, { v: number; t: number; inherited: boolean }[]>();
  const refcounts = new Map<number, number>();
  for (const b of interest) refcounts.set(b, pool.dataRefCount(b));
  const live = pool.devices();
  const roots = [...pool.mappingRoots()].sort(
    (a, b) => (live.get(b.devId)?.creationTime ?? 0) - (live.get(a.devId)?.creationTime ?? 0) || a.devId - b.devId,
  );
  const visited = new Uint8Array(pool.metadataNrBlocks);
  let nodesRead = 0;
  for (const { devId, root } of roots) {
    const created = live.get(devId)?.creationTime ?? 0;
    const what = `mapping tree of device ${devId}`;
    const stack: { block: number; depth: number }[] = [{ block: root, depth: 0 }];
    while (stack.length) {
      const { block, depth } = stack.pop()!;
      if (block >= visited.length)
        throw new DmiError('BAD_INPUT', `${what}: block ${block} is past the end of the metadata`);
      if (visited[block]) continue;
      visited[block] = 1;
      if (depth >= MAX_DEPTH) throw new DmiError('BAD_INPUT', `${what}: tree deeper than ${MAX_DEPTH} levels`);
      const buf = pool.node(block, what);
      nodesRead++;
      const h = decodeNodeHeader(buf, block, what, 8);
      const vo = h.valuesOffset;
      if (!h.isLeaf) {
        for (let i = 0; i < h.nrEntries; i++) stack.push({ block: u64At(buf, vo + 8 * i), depth: depth + 1 });
        continue;
      }
      for (let i = 0; i < h.nrEntries; i++) {
        const lo = buf.readUInt32LE(vo + 8 * i);
        const d = buf.readUInt32LE(vo + 8 * i + 4) * 256 + (lo >>> 24);
        if (!interest.has(d)) continue;
        const t = lo & 0xffffff;
        const list = byData.get(d) ?? [];
        if (list.length < 16) list.push({ v: u64At(buf, NODE_HEADER_SIZE + 8 * i), t, inherited: t < created });
        byData.set(d, list);
      }
    }
  }
  return { byData, refcounts, nodesRead };
}

export interface BlockStatus {
  /** One state per mapping (BLOCK_SHARED / BLOCK_FREE / BLOCK_REUSED). */
  states: Uint8Array;
  shared: number;
  free: number;
  reused: number;
}

/**
 * Where each mapping of `version` stands now. `createdAt`: the deleted device's creation time from a details
 * record, or null if none survives (then a live mapping counts as the same provisioning only if the live
 * device inherited it).
 */
export function classifyBlocks(version: DeletedVersion, createdAt: number | null, idx: LiveIndex): BlockStatus {
  const m = version.mappings;
  const states = new Uint8Array(m.vblocks.length);
  let shared = 0;
  let free = 0;
  let reused = 0;
  for (let i = 0; i < states.length; i++) {
    const d = m.dblocks[i]!;
    const rc = idx.refcounts.get(d) ?? 0;
    if (rc === 0) {
      states[i] = BLOCK_FREE;
      free++;
      continue;
    }
    const v = m.vblocks[i]!;
    const t = m.times[i]!;
    const inheritedHere = createdAt !== null && t < createdAt;
    const same = (idx.byData.get(d) ?? []).some((x) => x.v === v && x.t === t && (x.inherited || inheritedHere));
    if (same) {
      states[i] = BLOCK_SHARED;
      shared++;
    } else {
      states[i] = BLOCK_REUSED;
      reused++;
    }
  }
  return { states, shared, free, reused };
}
