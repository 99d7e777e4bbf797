/**
 * An opened thin-pool metadata device: the superblock in use (live, or the held metadata snapshot),
 * device details, per-device usage, space maps and per-device mappings. Every block read is checked
 * (checksum, block number, bounds) once.
 */
import { availableParallelism, loadavg } from 'node:os';
import { DmiError } from '../errors.js';
import { BlockSource, type BlockSourceOptions } from '../io/block-source.js';
import { forEachEntry, leaves, lookup, decodeNodeHeader, keyAt, u64ValueAt, MAX_DEPTH, nodeName } from './btree.js';
import { blockOfBlockTime } from './block-time.js';
import { TWO32, u64Safe as u64 } from '../io/cursor.js';
import { verifyBlock, type BlockKind } from './checksum.js';
import { decodeDeviceDetails, DEVICE_DETAILS_SIZE, MAX_THIN_DEVICE_ID, type DeviceDetails } from './details.js';
import {
  bitmapEntry,
  countBitmap,
  decodeIndexEntry,
  decodeMetadataIndex,
  ENTRIES_PER_BITMAP,
  nrBitmaps,
  type IndexEntry,
  type SmRoot,
} from './space-map.js';
import { decodeSuperblock, type Superblock } from './superblock.js';
import { startUsageWalk } from './usage.js';

export interface OpenPoolOptions extends BlockSourceOptions {
  /** Read the held metadata snapshot (superblock copy at `metadata_snap`) instead of the live trees. */
  metadataSnap?: boolean;
}

export interface DeviceUsage {
  /** mapped_blocks from the device details (as thin_ls MAPPED_BLOCKS). */
  mapped: number;
  /** Mappings whose data block no other (device, virtual block) maps. */
  exclusive: number;
  /** mapped − exclusive (as thin_ls SHARED_BLOCKS; never below 0). */
  shared: number;
}

export interface SpaceMapUsage {
  nrBlocks: number;
  /** nr_allocated from the space-map root; checked equal to `used`. */
  nrAllocated: number;
  /** Blocks with a non-zero count in the bitmaps. */
  used: number;
  free: number;
  bitmaps: number;
  /** Blocks whose count is ≥ 3 (bitmap value 3). */
  overflowBlocks: number;
  /** Entries in the overflow ref-count btree. */
  overflowEntries: number;
  /**
   * Disagreements between the counters and the bitmaps (empty when consistent). thin_restore 0.9
   * leaves the metadata space map's nr_allocated one above its bitmaps, so this is reported, not thrown.
   */
  problems: string[];
}

export interface MappingRun {
  vblock: number;
  dblock: number;
  length: number;
}

export interface PoolStats {
  /** Distinct blocks whose checksum was verified. */
  blocksVerified: number;
  reads: number;
  bytesRead: number;
}

const KIND_CODE: Record<BlockKind, number> = { superblock: 1, btree: 2, bitmap: 3, index: 4 };

export class ThinPool {
  /** The superblock whose trees are read (the snapshot copy with `metadataSnap`). */
  readonly superblock: Superblock;
  /** Block 0. */
  readonly liveSuperblock: Superblock;
  /** Data block size in 512-byte sectors and in bytes. */
  readonly dataBlockSectors: number;
  readonly dataBlockBytes: number;
  /** Data blocks in the pool (data space map nr_blocks). */
  readonly dataNrBlocks: number;
  readonly metadataNrBlocks: number;
  private readonly src: BlockSource;
  private readonly verified: Uint8Array;
  private nVerified = 0;
  private detailsCache: Map<number, DeviceDetails> | null = null;
  private topCache: { devId: number; root: number }[] | null = null;
  private usageCache: Map<number, DeviceUsage> | null = null;
  /** Facts about the last usage() walk: nodes read, shared nodes found, mappings counted. */
  usageStats: { nodes: number; sharedNodes: number; mappings: number; dataBlocks: number; worker: boolean } | null =
    null;

  constructor(src: BlockSource, metadataSnap = false) {
    this.src = src;
    if (src.nrBlocks < 1)
      throw new DmiError('BAD_INPUT', `${src.path}: too small for a thin-pool superblock (${src.nrBlocks} blocks)`);
    const live = decodeSuperblock(src.read(0), 0, 0);
    this.liveSuperblock = live;
    if (live.metadataNrBlocks > src.nrBlocks) {
      throw new DmiError(
        'BAD_INPUT',
        `${src.path}: metadata is truncated: the superblock counts ${live.metadataNrBlocks} blocks, the file holds ${src.nrBlocks}`,
      );
    }
    this.metadataNrBlocks = live.metadataNrBlocks;
    this.verified = new Uint8Array(this.metadataNrBlocks);
    this.verified[0] = KIND_CODE.superblock;
    this.nVerified = 1;
    if (live.metadataSpaceMapRoot.nrBlocks !== live.metadataNrBlocks) {
      throw new DmiError(
        'BAD_INPUT',
        `superblock: metadata space map has ${live.metadataSpaceMapRoot.nrBlocks} blocks, metadata_nr_blocks is ${live.metadataNrBlocks}`,
        { block: 0 },
      );
    }
    if (live.dataSpaceMapRoot.nrBlocks > 2 ** 40) {
      throw new DmiError(
        'BAD_INPUT',
        `superblock: data space map has ${live.dataSpaceMapRoot.nrBlocks} blocks (at most 2^40)`,
        { block: 0 },
      );
    }
    if (metadataSnap) {
      const at = live.metadataSnap;
      if (at === 0)
        throw new DmiError('NOT_FOUND', `${src.path}: no metadata snapshot is held (superblock metadata_snap = 0)`);
      if (at >= this.metadataNrBlocks) {
        throw new DmiError(
          'BAD_INPUT',
          `superblock: metadata_snap ${at} is past the end of the metadata (${this.metadataNrBlocks} blocks)`,
          { block: 0 },
        );
      }
      this.superblock = decodeSuperblock(src.read(at), 0, at, true);
      this.mark(at, 'superblock');
    } else {
      this.superblock = live;
    }
    this.dataBlockSectors = this.superblock.dataBlockSize;
    this.dataBlockBytes = this.superblock.dataBlockSize * 512;
    this.dataNrBlocks = live.dataSpaceMapRoot.nrBlocks;
  }

  /** Data block size in sectors (same as dataBlockSectors). */
  get dataBlockSize(): number {
    return this.dataBlockSectors;
  }

  get path(): string {
    return this.src.path;
  }

  get stats(): PoolStats {
    return { blocksVerified: this.nVerified, reads: this.src.stats.reads, bytesRead: this.src.stats.bytesRead };
  }

  private mark(n: number, kind: BlockKind): void {
    if (this.verified[n] === 0) this.nVerified++;
    this.verified[n] = KIND_CODE[kind];
  }

  /**
   * Marks every block non-zero in `walked[0, end)` (one entry per metadata block) verified as `kind`; returns how many
   * were not verified before (the caller counts them: a property update after the loop, which the loop's optimized
   * code reaches without type feedback, deoptimized it).
   */
  private markAll(walked: Uint8Array, end: number, kind: BlockKind): number {
    const v = this.verified;
    const code = KIND_CODE[kind];
    const n = Math.min(end, walked.length, v.length);
    let added = 0;
    for (let b = 0; b < n; b++) {
      if (walked[b] === 0) continue;
      if (v[b] === 0) added++;
      v[b] = code;
    }
    return added;
  }

  /** Block `n`, checksum and block number verified for `kind` (once per block). */
  block(n: number, kind: BlockKind, what: string): Buffer {
    if (!(n >= 0 && n < this.metadataNrBlocks)) {
      throw new DmiError(
        'BAD_INPUT',
        `${what}: block ${n} is past the end of the metadata (${this.metadataNrBlocks} blocks)`,
        { block: n },
      );
    }
    const buf = this.src.read(n, what);
    if (this.verified[n] !== KIND_CODE[kind]) {
      verifyBlock(buf, n, kind, what);
      this.mark(n, kind);
    }
    return buf;
  }

  /**
   * Block `n` as stored, nothing verified (a view valid until the next read): for scans of every block,
   * e.g. the stale-node scan in stale.ts. Throws BAD_INPUT past the end.
   */
  rawBlock(n: number): Buffer {
    return this.src.read(n, 'metadata scan');
  }

  /** Reader for btree walks. */
  readonly node = (n: number, what: string): Buffer => this.block(n, 'btree', what);

  /** Device details by device id, in id order. */
  devices(): Map<number, DeviceDetails> {
    if (this.detailsCache) return this.detailsCache;
    const out = new Map<number, DeviceDetails>();
    const what = 'device details tree';
    forEachEntry(this.node, this.superblock.deviceDetailsRoot, DEVICE_DETAILS_SIZE, what, (key, buf, off, h) => {
      checkDevId(key, h.blockNr, what);
      out.set(
        key,
        decodeDeviceDetails(key, buf, off, () => nodeName(h.blockNr, what)),
      );
    });
    this.detailsCache = out;
    return out;
  }

  /** Top-level mapping tree: device id → bottom-tree root, in id order. */
  mappingRoots(): ReadonlyArray<{ devId: number; root: number }> {
    if (this.topCache) return this.topCache;
    const out: { devId: number; root: number }[] = [];
    const what = 'top-level mapping tree';
    forEachEntry(this.node, this.superblock.dataMappingRoot, 8, what, (key, buf, off, h) => {
      checkDevId(key, h.blockNr, what);
      // The root read directly; u64 (its canonical message) only for a value past 2^53.
      const hi = buf.readUInt32LE(off + 4);
      const root =
        hi <= 0x1fffff
          ? hi * TWO32 + buf.readUInt32LE(off)
          : u64(buf, off, nodeName(h.blockNr, what), `root of device ${key}`);
      out.push({ devId: key, root });
    });
    this.topCache = out;
    return out;
  }

  /**
   * Per-device usage as thin_ls computes MAPPED/EXCLUSIVE/SHARED_BLOCKS, for every device in the
   * details tree. Walks every mapping once (shared subtrees once).
   */
  usage(): Map<number, DeviceUsage> {
    if (this.usageCache) return this.usageCache;
    // The worker thread (on large pools) boots while this thread reads the device details.
    const walk = startUsageWalk({
      readNode: this.node,
      readRaw: (n) => this.src.read(n, 'metadata'),
      source: this.src.fileRanges(),
      nrBlocks: this.src.nrBlocks,
      metadataBlocks: this.metadataNrBlocks,
      dataNrBlocks: this.dataNrBlocks,
      devices: this.mappingRoots(),
      threads: usageThreads(this.liveSuperblock.metadataSpaceMapRoot.nrAllocated),
      workerOnly: process.env.DMINSPECT_USAGE_WORKER === 'only',
    });
    let details: Map<number, DeviceDetails>;
    try {
      details = this.devices();
    } catch (e) {
      walk.abort();
      throw e;
    }
    const r = walk.finish();
    this.src.count(r.reads, r.bytesRead);
    for (const walked of r.walked) this.nVerified += this.markAll(walked, r.walkedEnd, 'btree');
    this.usageStats = {
      nodes: r.nodes,
      sharedNodes: r.sharedNodes,
      mappings: r.mappings,
      dataBlocks: r.dataBlocks,
      worker: r.worker,
    };
    const out = new Map<number, DeviceUsage>();
    for (const [id, d] of details) {
      const exclusive = r.exclusive.get(id) ?? 0;
      out.set(id, { mapped: d.mappedBlocks, exclusive, shared: Math.max(0, d.mappedBlocks - exclusive) });
    }
    this.usageCache = out;
    return out;
  }

  /** Data and metadata space maps, every bitmap read and counted; disagreements with the counters go to `problems`. */
  spaceMaps(): { data: SpaceMapUsage; metadata: SpaceMapUsage } {
    const live = this.liveSuperblock;
    const dataRoot = live.dataSpaceMapRoot;
    const dataIdx = this.dataIndexEntries(dataRoot);
    const metaRoot = live.metadataSpaceMapRoot;
    const metaIdx = this.metadataIndexEntries(metaRoot);
    return {
      data: this.smUsage('data', dataRoot, dataIdx),
      metadata: this.smUsage('metadata', metaRoot, metaIdx),
    };
  }

  private dataIndexEntries(root: SmRoot): IndexEntry[] {
    const count = nrBitmaps(root.nrBlocks);
    if (count > this.metadataNrBlocks) {
      throw new DmiError(
        'BAD_INPUT',
        `superblock: the data space map needs ${count} bitmaps, more than the metadata holds`,
        { block: 0 },
      );
    }
    const out: IndexEntry[] = new Array(count);
    const what = 'data space map index tree';
    let n = 0;
    forEachEntry(this.node, root.bitmapRoot, 16, what, (key, buf, off, h) => {
      if (key >= count)
        throw new DmiError(
          'BAD_INPUT',
          `${nodeName(h.blockNr, what)}: bitmap index ${key} but the data space map needs ${count}`,
          { block: h.blockNr },
        );
      out[key] = decodeIndexEntry(buf, off, nodeName(h.blockNr, what));
      n++;
    });
    if (n !== count)
      throw new DmiError(
        'BAD_INPUT',
        `${what}: ${n} index entries, ${count} bitmaps needed for ${root.nrBlocks} data blocks`,
        { block: root.bitmapRoot },
      );
    return out;
  }

  private metadataIndexEntries(root: SmRoot): IndexEntry[] {
    const buf = this.block(root.bitmapRoot, 'index', 'metadata space map');
    return decodeMetadataIndex(buf, root.bitmapRoot, nrBitmaps(root.nrBlocks));
  }

  private smUsage(name: 'data' | 'metadata', root: SmRoot, index: IndexEntry[]): SpaceMapUsage {
    let used = 0;
    let overflowBlocks = 0;
    let nrFree = 0;
    const seen = new Set<number>();
    index.forEach((e, i) => {
      const what = `${name} space map bitmap ${i}`;
      if (seen.has(e.blockNr))
        throw new DmiError('BAD_INPUT', `${what}: block ${e.blockNr} is used by two bitmaps`, { block: e.blockNr });
      seen.add(e.blockNr);
      const buf = this.block(e.blockNr, 'bitmap', what);
      const entries = Math.min(ENTRIES_PER_BITMAP, root.nrBlocks - i * ENTRIES_PER_BITMAP);
      const c = countBitmap(buf, entries);
      used += c.used;
      overflowBlocks += c.overflow;
      nrFree += e.nrFree;
    });
    let overflowEntries = 0;
    const what = `${name} space map ref-count tree`;
    forEachEntry(this.node, root.refCountRoot, 4, what, (key, _buf, _off, h) => {
      if (key >= root.nrBlocks)
        throw new DmiError(
          'BAD_INPUT',
          `${nodeName(h.blockNr, what)}: block ${key} is past the ${name} device (${root.nrBlocks} blocks)`,
          { block: h.blockNr },
        );
      overflowEntries++;
    });
    const problems: string[] = [];
    if (used !== root.nrAllocated)
      problems.push(
        `${name} space map: nr_allocated is ${root.nrAllocated} but the bitmaps count ${used} blocks in use`,
      );
    // The kernel counts a bitmap's entries past the end of the device as free (sm_ll_extend sets nr_free to the
    // whole bitmap); thin_restore counts only up to nr_blocks. Either convention is consistent.
    const kernelFree = index.length * ENTRIES_PER_BITMAP - used;
    if (nrFree !== root.nrBlocks - used && nrFree !== kernelFree) {
      problems.push(
        `${name} space map: the index entries count ${nrFree} free blocks, the bitmaps ${root.nrBlocks - used}`,
      );
    }
    if (overflowBlocks !== overflowEntries)
      problems.push(
        `${name} space map: ${overflowBlocks} blocks have a count ≥ 3 but the ref-count tree holds ${overflowEntries}`,
      );
    return {
      nrBlocks: root.nrBlocks,
      nrAllocated: root.nrAllocated,
      used,
      free: root.nrBlocks - used,
      bitmaps: index.length,
      overflowBlocks,
      overflowEntries,
      problems,
    };
  }

  /** Reference count of data block `b` in the data space map (bitmap, then the overflow tree). */
  dataRefCount(b: number): number {
    const root = this.liveSuperblock.dataSpaceMapRoot;
    if (!(b >= 0 && b < root.nrBlocks))
      throw new DmiError('NOT_FOUND', `data block ${b} is past the data device (${root.nrBlocks} blocks)`);
    const i = Math.floor(b / ENTRIES_PER_BITMAP);
    const e = lookup(this.node, root.bitmapRoot, i, 16, 'data space map index tree');
    if (!e)
      throw new DmiError('BAD_INPUT', `data space map index tree: no entry for bitmap ${i}`, {
        block: root.bitmapRoot,
      });
    const ie = decodeIndexEntry(e.buf, e.offset, 'data space map index tree');
    const v = bitmapEntry(this.block(ie.blockNr, 'bitmap', `data space map bitmap ${i}`), b % ENTRIES_PER_BITMAP);
    if (v < 3) return v;
    const o = lookup(this.node, root.refCountRoot, b, 4, 'data space map ref-count tree');
    if (!o)
      throw new DmiError('BAD_INPUT', `data space map ref-count tree: no count for data block ${b} (bitmap says ≥ 3)`, {
        block: root.refCountRoot,
      });
    return o.buf.readUInt32LE(o.offset);
  }

  private deviceRoot(devId: number): number {
    const e = lookup(this.node, this.superblock.dataMappingRoot, devId, 8, 'top-level mapping tree');
    if (!e) throw new DmiError('NOT_FOUND', `thin device ${devId} is not in the pool's mapping tree`);
    return u64(e.buf, e.offset, 'top-level mapping tree', `root of device ${devId}`);
  }

  /**
   * Mappings of device `devId` in virtual-block order, coalesced: adjacent virtual blocks on
   * adjacent data blocks form one run. Throws NOT_FOUND for an unknown device.
   */
  *mappingRuns(devId: number): Generator<MappingRun> {
    const what = `mapping tree of device ${devId}`;
    let run: MappingRun | null = null;
    for (const leaf of leaves(this.node, this.deviceRoot(devId), 8, what)) {
      const { header, keys } = leaf;
      const buf = Buffer.from(leaf.buf); // the consumer may read between yields
      const vo = header.valuesOffset;
      for (let i = 0; i < header.nrEntries; i++) {
        const v = keys[i]!;
        const lo = buf.readUInt32LE(vo + 8 * i);
        const d = blockOfBlockTime(lo, buf.readUInt32LE(vo + 8 * i + 4));
        if (d >= this.dataNrBlocks) {
          throw new DmiError(
            'BAD_INPUT',
            `${nodeName(header.blockNr, what)}: virtual block ${v} maps data block ${d}, past the data device (${this.dataNrBlocks} blocks)`,
            { block: header.blockNr },
          );
        }
        if (run && run.vblock + run.length === v && run.dblock + run.length === d) {
          run.length++;
        } else {
          if (run) yield run;
          run = { vblock: v, dblock: d, length: 1 };
        }
      }
    }
    if (run) yield run;
  }

  /** Highest mapped virtual block of `devId`, or null if it maps nothing. */
  highestMappedBlock(devId: number): number | null {
    const what = `mapping tree of device ${devId}`;
    const path: number[] = [];
    const walk = (block: number): number | null => {
      if (path.includes(block))
        throw new DmiError(
          'BAD_INPUT',
          `${nodeName(path[path.length - 1]!, what)}: child ${block} points back to an ancestor (cycle)`,
        );
      if (path.length >= MAX_DEPTH)
        throw new DmiError('BAD_INPUT', `${nodeName(block, what)}: tree deeper than ${MAX_DEPTH} levels`);
      const buf = Buffer.from(this.node(block, what));
      const h = decodeNodeHeader(buf, block, what, 8);
      if (h.isLeaf) return h.nrEntries > 0 ? keyAt(buf, h, h.nrEntries - 1, what) : null;
      path.push(block);
      try {
        for (let i = h.nrEntries - 1; i >= 0; i--) {
          const r = walk(u64ValueAt(buf, h, i, what));
          if (r !== null) return r;
        }
        return null;
      } finally {
        path.pop();
      }
    };
    return walk(this.deviceRoot(devId));
  }

  /** Highest device id in the details tree, or null if there are none. */
  maxDeviceId(): number | null {
    let max: number | null = null;
    for (const id of this.devices().keys()) if (max === null || id > max) max = id;
    return max;
  }

  /** Lowest device id ≥ `from` (wrapping at 2^24) not in use, or null if all 2^24 ids are taken. */
  nextFreeDeviceId(from = 0): number | null {
    const used = this.devices();
    const ids = new Set<number>([...used.keys(), ...this.mappingRoots().map((r) => r.devId)]);
    for (let n = 0; n <= MAX_THIN_DEVICE_ID; n++) {
      const id = (from + n) % (MAX_THIN_DEVICE_ID + 1);
      if (!ids.has(id)) return id;
    }
    return null;
  }

  close(): void {
    this.src.close();
  }
}

/**
 * Pools with at least this many metadata blocks in use (about 8 million mappings: 256 MiB of leaves holding 126 each)
 * are walked in two threads (usage.ts), when a second CPU is free: below it, starting a worker costs more than it
 * saves. A worker thread is an isolate of its own: its first line runs 70–90 ms after `new Worker` on the 2-core
 * development VM (load 3), it warms up its own copy of the kernel, and it touches about 3,000 fresh pages (≈ 25 µs a
 * page fault there), while this thread walks about 40,000 nodes in 140 ms. Measured (load 3–3.5, medians of 5–6):
 * the 5M-mapping pool (40,218 blocks) took main-thread CPU 400 → 440 ms and wall 530 → 636 ms with the worker; the
 * 20M pool (160,617 blocks) 690 → 614 ms of main-thread CPU and 783 → 685 ms at best.
 */
export const USAGE_WORKER_MIN_METADATA_BLOCKS = 65536;

/**
 * Threads for the usage walk of a pool using `metadataUsed` metadata blocks: two when the pool is large and a whole
 * second CPU is free (the 1-minute load average at least one CPU below the CPU count). The worker costs this thread
 * about 30 ms (starting it, merging its owner words) and boots and warms up its own copy of the kernel; with less
 * than a CPU free it waits for one and this thread waits for it: on the 2-core development VM at load 2.3–2.9,
 * `pool --json` on the 5M-mapping pool took 650–860 ms with the worker against 460–500 ms without (this thread's CPU
 * time did not drop), and the reader alone on the 20M pool 680–770 ms against 510–530. DMINSPECT_USAGE_WORKER
 * overrides:
 * `always` (two threads), `only` (the worker walks every device: tests run the worker's code on small fixtures this
 * way), `never` (one thread).
 */
function usageThreads(metadataUsed: number): 1 | 2 {
  const env = process.env.DMINSPECT_USAGE_WORKER;
  if (env === 'always' || env === 'only') return 2;
  if (env === 'never') return 1;
  const cpus = availableParallelism();
  return metadataUsed >= USAGE_WORKER_MIN_METADATA_BLOCKS && cpus >= 2 && loadavg()[0]! <= cpus - 1 ? 2 : 1;
}

function checkDevId(key: number, block: number, what: string): void {
  if (key > MAX_THIN_DEVICE_ID) {
    throw new DmiError('BAD_INPUT', `${nodeName(block, what)}: device id ${key} is above the 24-bit limit`, { block });
  }
}

/**
 * Opens the metadata at `metadataPath` (a file or block device, opened read-only; optionally a byte
 * range `offset`/`length` inside it) and reads the superblock.
 */
export function openPool(metadataPath: string, opts: OpenPoolOptions = {}): ThinPool {
  const src = BlockSource.open(metadataPath, opts);
  try {
    return new ThinPool(src, opts.metadataSnap ?? false);
  } catch (e) {
    src.close();
    throw e;
  }
}
