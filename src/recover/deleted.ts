/**
 * Deleted thin devices: what the pool's stale metadata still describes (thin/stale.ts), where each version's
 * data blocks stand now, and who the device was to Docker. Use cases behind `dminspect deleted` and
 * `dminspect export --deleted`.
 *
 * Block states per version: `shared` (a live device still maps the same provisioning: intact), `free`
 * (reference count 0, not zeros: intact unless something wrote it and freed it again), `discarded` (free and
 * reading as zeros: a hole punched by a discard, or zeros the device wrote; never evidence), `reused` (another
 * device owns the block now: its bytes are not the deleted device's; an export leaves it as a hole).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DeviceRecord } from '../docker/records.js';
import { DockerRoot } from '../docker/root.js';
import type { DmHost } from '../dm/host.js';
import { DmiError, fsError } from '../errors.js';
import { loadModel, ownerOf } from '../model/join.js';
import { ExtentMap } from '../io/extents.js';
import { checkOutput, writeImage } from '../forensics/export.js';
import { locatePool, openPoolSource, type PoolSource, type PoolSourceOptions } from '../pool-source/index.js';
import { locateRootLive, withHeldSnapshot, type HeldView, type LiveLocation } from '../pool-source/live.js';
import type { CopyProgress } from '../thin/copy.js';
import { copyThinDevice } from '../thin/copy.js';
import type { MappingRun, ThinPool } from '../thin/pool.js';
import { distModule } from '../pool-source/held-read.js';
import {
  BLOCK_FREE,
  BLOCK_REUSED,
  buildLiveIndex,
  classifyBlocks,
  scanStale,
  versionRuns,
  type DeletedDevice,
  type DeletedVersion,
  type LiveIndex,
  type StaleScanResult,
} from '../thin/stale.js';

export interface DeletedOptions extends PoolSourceOptions {
  /** Read free blocks from the data file to tell discarded (zeros) from intact. Default true when a data file is known. */
  checkData?: boolean;
  onScanProgress?: (done: number, total: number) => void;
}

export interface BlockCounts {
  /** Still mapped by a live device (the same provisioning): intact. */
  shared: number;
  /** Reference count 0 and not zeros: intact unless overwritten and freed again. */
  free: number;
  /** Reference count 0 and reading as zeros (null: the data was not read). */
  discarded: number | null;
  /** Owned by another device now: overwritten. */
  reused: number;
  /**
   * Of `free`: blocks another deleted device (or version of it) also mapped as a different provisioning (another
   * virtual block or time): one of the two overwrote the other, so these may not hold this version's bytes.
   */
  contested: number;
  /** shared + free. */
  intact: number;
}

export interface DeletedVersionView {
  version: number;
  newest: boolean;
  /** Metadata block of the mapping tree's root. */
  root: number;
  mappedBlocks: number;
  mappedBytes: number;
  highestTime: number | null;
  highestVblock: number | null;
  /** Every metadata block of the tree is still free in the live space map. */
  treeFree: boolean;
  /** Stale top-level leaves naming the root. */
  namedBy: number[];
  /** A details record of the device whose mapped_blocks equals this version's count (the same commit, likely). */
  details: { mappedBlocks: number; transactionId: number; creationTime: number; snapshottedTime: number } | null;
  blocks: BlockCounts;
}

export interface DockerJoin {
  /** Device hash of the Docker record with this device_id ("" = base). */
  hash: string;
  file: string;
  size: number;
  deleted: boolean | null;
  /** Who it is to Docker ("container web", "image layer", "unreferenced record"). */
  owner: string;
  containerId: string | null;
  containerName: string | null;
}

export interface DeletedDeviceView {
  deviceId: number;
  /** Docker's record still naming the device id, or null (owner "unknown"). */
  docker: DockerJoin | null;
  owner: string;
  details: { mappedBlocks: number; transactionId: number; creationTime: number; snapshottedTime: number }[];
  lineage: DeletedDevice['lineage'];
  versions: DeletedVersionView[];
  rejectedRoots: { root: number; reason: string }[];
  droppedVersions: number;
}

export interface DeletedReport {
  metadataFile: string;
  dataFile: string | null;
  root: string | null;
  poolTime: number;
  transactionId: number;
  dataBlockSectors: number;
  dataBlockBytes: number;
  scan: {
    metadataBlocks: number;
    allocatedBlocks: number;
    btreeNodes: number;
    freeBtreeNodes: number;
    topLevelLeaves: number;
    detailsLeaves: number;
    nodesWalked: number;
    truncated: boolean;
    elapsedMs: number;
  };
  liveDeviceIds: number[];
  devices: DeletedDeviceView[];
  /** Details records of deleted device ids whose mapping trees are gone. */
  detailsOnly: {
    deviceId: number;
    mappedBlocks: number;
    transactionId: number;
    creationTime: number;
    snapshottedTime: number;
  }[];
  /** Free mapping trees whose top-level entry is gone: device id unknown (may be an old version of a live device). */
  unattributed: { root: number; mappedBlocks: number; highestTime: number | null; highestVblock: number }[];
  unattributedCount: number;
}

/** Reads data blocks (read-only) from the pool's data file or an LVM data LV's extents. */
class DataReader {
  private readonly fds = new Map<string, number>();
  private readonly map: ExtentMap;
  private readonly buf: Buffer;
  readonly label: string;

  constructor(
    src: PoolSource,
    private readonly blockBytes: number,
  ) {
    const d = src.data!;
    if (d.extents) {
      this.map = new ExtentMap(d.extents, d.path);
      this.label = d.label;
    } else {
      const p = d.path;
      let size: number;
      try {
        size = fs.statSync(p).size;
      } catch (e) {
        throw fsError(e, p);
      }
      this.map = new ExtentMap([{ path: p, offset: 0, length: size }]);
      this.label = p;
    }
    this.buf = Buffer.alloc(blockBytes);
  }

  /** Whether data block `d` reads as zeros (past the end of the data counts as zeros). */
  isZero(d: number): boolean {
    const pos = d * this.blockBytes;
    const len = Math.max(0, Math.min(this.blockBytes, this.map.length - pos));
    if (len === 0) return true;
    for (const piece of this.map.pieces(pos, len)) {
      let fd = this.fds.get(piece.path);
      if (fd === undefined) {
        try {
          fd = fs.openSync(piece.path, 'r');
        } catch (e) {
          throw fsError(e, piece.path, 'open');
        }
        this.fds.set(piece.path, fd);
      }
      let done = 0;
      while (done < piece.length) {
        const n = fs.readSync(fd, this.buf, piece.at - pos + done, piece.length - done, piece.offset + done);
        if (n === 0) break;
        done += n;
      }
    }
    const b = this.buf.subarray(0, len);
    for (let i = 0; i < len; i += 8) if (b.readBigUInt64LE(i) !== 0n) return false;
    return true;
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

function recordsById(root: DockerRoot | null): Map<number, DeviceRecord> {
  const byId = new Map<number, DeviceRecord>();
  if (!root) return byId;
  for (const r of root.recordSet().devices) if (!byId.has(r.deviceId) || !r.deleted) byId.set(r.deviceId, r);
  return byId;
}

function dockerJoin(root: DockerRoot | null, rec: DeviceRecord | undefined): DockerJoin | null {
  if (!root || !rec) return null;
  let owner = 'unreferenced record';
  let containerId: string | null = null;
  let containerName: string | null = null;
  try {
    const o = ownerOf(loadModel(root), rec.hash);
    containerId = o.containerId ?? null;
    containerName = o.containerName ?? null;
    const who = containerName || containerId?.slice(0, 12);
    owner =
      o.role === 'base'
        ? 'base device'
        : o.role === 'container'
          ? `container ${who}`
          : o.role === 'init'
            ? `init of ${who}`
            : o.role === 'layer'
              ? 'image layer'
              : 'unreferenced record';
  } catch {
    // the record alone still names the device
  }
  return { hash: rec.hash, file: rec.file, size: rec.size, deleted: rec.deleted, owner, containerId, containerName };
}

/** Per-mapping states of a version, with free blocks split into intact and discarded when the data is read. */
/** data block → the (device, virtual block, time) mappings every stale version has of it (a few per block). */
type StaleOwners = Map<number, { dev: number; v: number; t: number }[]>;

function staleOwners(devices: DeletedDevice[]): StaleOwners {
  const out: StaleOwners = new Map();
  for (const d of devices) {
    for (const ver of d.versions) {
      const m = ver.mappings;
      for (let i = 0; i < m.dblocks.length; i++) {
        const b = m.dblocks[i]!;
        const list = out.get(b) ?? [];
        const v = m.vblocks[i]!;
        const t = m.times[i]!;
        if (list.length < 8 && !list.some((x) => x.dev === d.devId && x.v === v && x.t === t))
          list.push({ dev: d.devId, v, t });
        out.set(b, list);
      }
    }
  }
  return out;
}

function versionStates(
  v: DeletedVersion,
  createdAt: number | null,
  idx: LiveIndex,
  data: DataReader | null,
  owners: StaleOwners,
): { states: Uint8Array; counts: BlockCounts; zero: Uint8Array | null } {
  const s = classifyBlocks(v, createdAt, idx);
  const zero: Uint8Array | null = data ? new Uint8Array(s.states.length) : null;
  let zeros = 0;
  let contested = 0;
  for (let i = 0; i < s.states.length; i++) {
    if (s.states[i] !== BLOCK_FREE) continue;
    const d = v.mappings.dblocks[i]!;
    if (data && zero && data.isZero(d)) {
      zero[i] = 1;
      zeros++;
      continue;
    }
    const vb = v.mappings.vblocks[i]!;
    const t = v.mappings.times[i]!;
    // another stale mapping of the block at another virtual block or time: a different provisioning of it
    if ((owners.get(d) ?? []).some((x) => x.v !== vb || x.t !== t)) contested++;
  }
  const discarded = data ? zeros : null;
  const free = s.free - zeros;
  return {
    states: s.states,
    zero,
    counts: { shared: s.shared, free, discarded, reused: s.reused, contested, intact: s.shared + free },
  };
}

function detailsFor(d: DeletedDevice, mapped: number): DeletedVersionView['details'] {
  const x = d.details.find((r) => r.mappedBlocks === mapped);
  return x
    ? {
        mappedBlocks: x.mappedBlocks,
        transactionId: x.transactionId,
        creationTime: x.creationTime,
        snapshottedTime: x.snapshottedTime,
      }
    : null;
}

function createdAtOf(d: DeletedDevice): number | null {
  return d.details.length ? d.details[0]!.creationTime : null;
}

interface Scanned {
  src: PoolSource;
  scan: StaleScanResult;
  idx: LiveIndex;
  data: DataReader | null;
  elapsedMs: number;
}

function scanSource(src: PoolSource, opts: DeletedOptions): Scanned {
  const t0 = performance.now();
  const scan = scanStale(src.pool, { onProgress: opts.onScanProgress });
  const elapsedMs = Math.round(performance.now() - t0);
  const idx = buildLiveIndex(src.pool, scan.devices);
  const haveData = src.data !== null && (src.data.extents !== undefined || fs.existsSync(src.data.path));
  const data = (opts.checkData ?? true) && haveData ? new DataReader(src, src.pool.dataBlockBytes) : null;
  return { src, scan, idx, data, elapsedMs };
}

/** Lists the deleted devices of the pool of `root` (or --metadata / --image). */
export function listDeleted(root: DockerRoot | null, opts: DeletedOptions = {}): DeletedReport {
  const src = openPoolSource(locatePool(root?.root ?? null, opts), { metadataSnap: opts.metadataSnap });
  let data: DataReader | null = null;
  try {
    const s = scanSource(src, opts);
    data = s.data;
    return report(root, s);
  } finally {
    data?.close();
    src.close();
  }
}

/** What decides a live read of `deleted` (pool-source/live.ts), beside the pool options. */
export interface DeletedLiveOptions extends DeletedOptions {
  /** false: read the files as they lie on disk (`--no-live`). */
  live?: boolean | undefined;
  /** Hold records (default /run/dminspect). */
  stateDir: string;
  stepTimeoutMs?: number | undefined;
  log?: ((line: string) => void) | undefined;
  /** sysfs root (tests). */
  sysfs?: string | undefined;
}

/**
 * `deleted` on a pool the kernel has active: through a held metadata snapshot (reserve, read, release — also on an
 * error, a signal or a timeout), the live devices from the held trees; `--metadata-snap` reads the snapshot another
 * holder has. Not active (or `--no-live`, `--metadata`, `--image`): the files, as `listDeleted`.
 */
export async function listDeletedLive(
  root: DockerRoot | null,
  opts: DeletedLiveOptions,
  host: DmHost,
): Promise<DeletedReport> {
  const loc = await locateRootLive(root?.root ?? null, opts, host);
  if (!loc) return listDeleted(root, opts);
  const poolOpts = Object.fromEntries(
    Object.entries(opts).filter(([, v]) => typeof v !== 'function'),
  ) as DeletedOptions;
  const r = await withHeldSnapshot(
    host,
    loc,
    { stateDir: opts.stateDir, useHeld: opts.metadataSnap, stepTimeoutMs: opts.stepTimeoutMs, log: opts.log },
    {
      task: { module: distModule('recover/deleted.js'), fn: 'heldDeleted', args: [root?.root ?? null, poolOpts, loc] },
      local: (v) => listDeleted(root, { ...opts, location: loc, metadataSnap: v.heldRoot !== null }),
    },
  );
  return r.value;
}

/** The held read of `listDeletedLive` in the read's worker thread (pool-source/held-read.ts). */
export function heldDeleted(
  rootDir: string | null,
  opts: DeletedOptions,
  loc: LiveLocation,
  v: HeldView,
): DeletedReport {
  const root = rootDir === null ? null : DockerRoot.open(rootDir);
  return listDeleted(root, { ...opts, location: loc, metadataSnap: v.heldRoot !== null });
}

function report(root: DockerRoot | null, s: Scanned): DeletedReport {
  const { src, scan, idx, data } = s;
  const pool = src.pool;
  const bs = pool.dataBlockBytes;
  const byId = recordsById(root);
  const owners = staleOwners(scan.devices);
  const devices: DeletedDeviceView[] = scan.devices.map((d) => {
    const docker = dockerJoin(root, byId.get(d.devId));
    const createdAt = createdAtOf(d);
    return {
      deviceId: d.devId,
      docker,
      owner: docker ? docker.owner : 'unknown',
      details: d.details.map(({ mappedBlocks, transactionId, creationTime, snapshottedTime }) => ({
        mappedBlocks,
        transactionId,
        creationTime,
        snapshottedTime,
      })),
      lineage: d.lineage,
      versions: d.versions.map((v) => ({
        version: v.version,
        newest: v.newest,
        root: v.root,
        mappedBlocks: v.mappedBlocks,
        mappedBytes: v.mappedBlocks * bs,
        highestTime: v.highestTime,
        highestVblock: v.highestVblock,
        treeFree: v.allFree,
        namedBy: v.namedBy,
        details: detailsFor(d, v.mappedBlocks),
        blocks: versionStates(v, createdAt, idx, data, owners).counts,
      })),
      rejectedRoots: d.rejected,
      droppedVersions: d.dropped,
    };
  });
  return {
    metadataFile: src.metadataFile,
    dataFile: data ? data.label : null,
    root: root ? root.root : null,
    poolTime: pool.liveSuperblock.time,
    transactionId: pool.liveSuperblock.transactionId,
    dataBlockSectors: pool.dataBlockSectors,
    dataBlockBytes: bs,
    scan: {
      metadataBlocks: scan.metadataBlocks,
      allocatedBlocks: scan.allocatedBlocks,
      btreeNodes: scan.btreeNodes,
      freeBtreeNodes: scan.freeBtreeNodes,
      topLevelLeaves: scan.topLevelLeaves,
      detailsLeaves: scan.detailsLeaves,
      nodesWalked: scan.nodesWalked,
      truncated: scan.truncated,
      elapsedMs: s.elapsedMs,
    },
    liveDeviceIds: scan.liveDeviceIds,
    devices,
    unattributed: scan.unattributed,
    unattributedCount: scan.unattributedCount,
    detailsOnly: scan.detailsOnly.map(({ devId, mappedBlocks, transactionId, creationTime, snapshottedTime }) => ({
      deviceId: devId,
      mappedBlocks,
      transactionId,
      creationTime,
      snapshottedTime,
    })),
  };
}

export interface ExportDeletedOptions extends DeletedOptions {
  deviceId: number;
  /** Version number (default: the newest). */
  version?: number;
  size?: number;
  force?: boolean;
  sparse?: boolean;
  onProgress?: (p: CopyProgress) => void;
  signal?: AbortSignal;
}

export interface ExportDeletedResult {
  image: string;
  deviceId: number;
  version: number;
  newest: boolean;
  size: number;
  /** Where the size came from. */
  sizeFrom: 'docker-record' | 'option' | 'highest-mapped-block';
  sha256: string;
  blocks: BlockCounts;
  /** Virtual block ranges left as holes because another device owns their data blocks now. */
  reusedRanges: { vblock: number; length: number }[];
  mappedBytes: number;
  copiedBytes: number;
  holes: number;
  holeBytes: number;
  elapsedMs: number;
  metadata: string;
  data: string;
  docker: DockerJoin | null;
  warnings: string[];
}

/** Runs of the version without the reused mappings (those stay holes: their bytes belong to another device now). */
function intactRuns(v: DeletedVersion, states: Uint8Array): Generator<MappingRun> {
  const keep = (_: number, k: number): boolean => states[k] !== BLOCK_REUSED;
  return versionRuns({
    vblocks: v.mappings.vblocks.filter(keep),
    dblocks: v.mappings.dblocks.filter(keep),
    times: v.mappings.times.filter(keep),
  });
}

function reusedRanges(v: DeletedVersion, states: Uint8Array): { vblock: number; length: number }[] {
  const out: { vblock: number; length: number }[] = [];
  for (let i = 0; i < states.length; i++) {
    if (states[i] !== BLOCK_REUSED) continue;
    const vb = v.mappings.vblocks[i]!;
    const last = out[out.length - 1];
    if (last && last.vblock + last.length === vb) last.length++;
    else out.push({ vblock: vb, length: 1 });
  }
  return out;
}

/** Exports one version of a deleted device to `imagePath` (sparse, sha256); reused blocks stay holes. */
export async function exportDeleted(
  root: DockerRoot | null,
  imagePath: string,
  opts: ExportDeletedOptions,
): Promise<ExportDeletedResult> {
  const t0 = performance.now();
  const image = path.resolve(imagePath);
  const src = openPoolSource(locatePool(root?.root ?? null, opts), { metadataSnap: opts.metadataSnap });
  let data: DataReader | null = null;
  try {
    const data0 = src.data;
    if (data0 === null || (data0.extents === undefined && !fs.existsSync(data0.path))) {
      throw new DmiError(
        'NOT_FOUND',
        `${data0?.path ?? 'pool data'}: no pool data file (pass --data, or --image for a direct-lvm pool)`,
      );
    }
    const s = scanSource(src, opts);
    data = s.data;
    const pool: ThinPool = src.pool;
    const dev = s.scan.devices.find((d) => d.devId === opts.deviceId);
    if (!dev) {
      if (s.scan.liveDeviceIds.includes(opts.deviceId))
        throw new DmiError(
          'CONFLICT',
          `thin device ${opts.deviceId} is live in the pool: use dminspect export --device-id ${opts.deviceId}`,
        );
      throw new DmiError(
        'NOT_FOUND',
        `no deleted thin device ${opts.deviceId} in the stale metadata of ${src.metadataFile}`,
      );
    }
    if (dev.versions.length === 0)
      throw new DmiError(
        'NOT_FOUND',
        `deleted thin device ${opts.deviceId}: no version of its mapping tree is readable (${dev.rejected.length} overwritten)`,
      );
    const v =
      opts.version === undefined
        ? dev.versions.find((x) => x.newest)!
        : dev.versions.find((x) => x.version === opts.version);
    if (!v)
      throw new DmiError(
        'NOT_FOUND',
        `deleted thin device ${opts.deviceId} has versions 1..${dev.versions.length}, not ${opts.version}`,
      );
    const rec = recordsById(root).get(opts.deviceId);
    const docker = dockerJoin(root, rec);
    const warnings: string[] = [];
    let size: number;
    let sizeFrom: ExportDeletedResult['sizeFrom'];
    if (rec) {
      size = rec.size;
      sizeFrom = 'docker-record';
      if (opts.size !== undefined && opts.size !== rec.size)
        warnings.push(`--size ${opts.size} ignored: Docker's record ${rec.file} says ${rec.size}`);
    } else if (opts.size !== undefined) {
      size = opts.size;
      sizeFrom = 'option';
    } else {
      size = ((v.highestVblock ?? -1) + 1) * pool.dataBlockBytes;
      sizeFrom = 'highest-mapped-block';
      warnings.push(
        `no Docker record and no --size: the image ends after the highest mapped block (${size} bytes); the device may have been larger`,
      );
    }
    const st = versionStates(v, createdAtOf(dev), s.idx, data, staleOwners(s.scan.devices));
    if (st.counts.contested > 0)
      warnings.push(
        `${st.counts.contested} free block(s) were also mapped differently by another deleted device or version: they may hold other bytes`,
      );
    if (st.counts.reused > 0)
      warnings.push(`${st.counts.reused} block(s) are owned by another device now: left as holes (see reusedRanges)`);
    if (!v.newest) warnings.push(`version ${v.version} is not the newest (${dev.versions.length})`);
    checkOutput(image, { root: root?.root ?? null, pool: src.location }, opts.force ?? false);
    const r = await writeImage(image, opts.force ?? false, (out) =>
      copyThinDevice({
        pool,
        devId: opts.deviceId,
        runs: intactRuns(v, st.states),
        dataPath: data0.path,
        dataExtents: data0.extents,
        dataLabel: data0.label,
        size,
        out,
        outName: image,
        sparse: opts.sparse ?? true,
        onProgress: opts.onProgress,
        signal: opts.signal,
      }),
    );
    if (r.mappedPastEnd > 0)
      warnings.push(`version ${v.version} maps ${r.mappedPastEnd} bytes at or past the size ${size}: not exported`);
    return {
      image,
      deviceId: opts.deviceId,
      version: v.version,
      newest: v.newest,
      size,
      sizeFrom,
      sha256: r.sha256,
      blocks: st.counts,
      reusedRanges: reusedRanges(v, st.states),
      mappedBytes: v.mappedBlocks * pool.dataBlockBytes,
      copiedBytes: r.copiedBytes,
      holes: r.holes,
      holeBytes: r.holeBytes,
      elapsedMs: Math.round(performance.now() - t0),
      metadata: src.metadataFile,
      data: data0.label,
      docker,
      warnings,
    };
  } finally {
    data?.close();
    src.close();
  }
}
