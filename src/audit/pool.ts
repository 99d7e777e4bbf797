/**
 * The pool audit: the pool's own binary metadata (read offline by thin/) joined with Docker's records. Pool
 * facts, per-device mapped / exclusive / shared usage with the name each device has to Docker, and findings —
 * each with a severity, the evidence and the remedy.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DeviceRecord } from '../docker/records.js';
import type { DockerRoot } from '../docker/root.js';
import { resolveNaming, type NamingOptions } from '../docker/naming.js';
import { DmiError } from '../errors.js';
import { openPool, type ThinPool } from '../thin/index.js';
import { locateLvmPool, openLvmPoolMetadata, poolFindings, type LvmFinding, type LvmFindingKind, type LvmThinPool } from '../pool-source/lvm.js';
import { humanBytes, percent } from '../util/units.js';
import { loadModel, ownerOf, type DeviceRole, type Model } from '../model/join.js';

export type Severity = 'critical' | 'warning' | 'info';

export type FindingKind =
  | 'orphan-device'
  | 'record-without-device'
  | 'deleted-record'
  | 'open-transaction'
  | 'stale-transaction'
  | 'record-transaction-ahead'
  | 'next-device-id-behind'
  | 'needs-check'
  | 'data-space-low'
  | 'metadata-space-low'
  | 'mnt-without-record'
  | 'stale-tmp-file'
  | 'unreferenced-record'
  | 'bad-record';

export interface Finding {
  kind: FindingKind | LvmFindingKind;
  severity: Severity;
  message: string;
  evidence: Record<string, unknown>;
  remedy: string;
}

export interface SpaceFacts {
  totalBlocks: number;
  usedBlocks: number;
  freeBlocks: number;
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
  usedPercent: number;
}

/** A device's usage in the pool, in data blocks and bytes (as thin_ls counts them). */
export interface DeviceUsageView {
  deviceId: number;
  mappedBlocks: number;
  exclusiveBlocks: number;
  sharedBlocks: number;
  mappedBytes: number;
  exclusiveBytes: number;
  sharedBytes: number;
}

export function usageView(deviceId: number, u: { mapped: number; exclusive: number; shared: number }, blockBytes: number): DeviceUsageView {
  return {
    deviceId,
    mappedBlocks: u.mapped,
    exclusiveBlocks: u.exclusive,
    sharedBlocks: u.shared,
    mappedBytes: u.mapped * blockBytes,
    exclusiveBytes: u.exclusive * blockBytes,
    sharedBytes: u.shared * blockBytes,
  };
}

export interface PoolDevice extends DeviceUsageView {
  role: DeviceRole | 'orphan' | 'unknown';
  /** Who it is to Docker, in words ("container web", "image layer of busybox:latest", "orphan"). */
  owner: string;
  hash: string | null;
  containerId: string | null;
  containerName: string | null;
  transactionId: number;
  creationTime: number;
  snapTime: number;
  /** Virtual size from Docker's record, when there is one. */
  size: number | null;
}

export interface PoolReport {
  metadataFile: string;
  dataFile: string | null;
  root: string | null;
  poolName: string | null;
  metadataSnap: boolean;
  version: number;
  time: number;
  transactionId: number;
  needsCheck: boolean;
  heldMetadataSnapshot: number | null;
  dataBlockSectors: number;
  dataBlockBytes: number;
  data: SpaceFacts;
  metadata: SpaceFacts;
  devices: PoolDevice[];
  findings: Finding[];
  /** Problems the space maps reported (counters vs bitmaps). */
  spaceMapProblems: string[];
  /** Direct-lvm: the LVM thin pool the metadata was read from (`--image`). */
  lvm: { vg: string; lv: string; dmName: string; transactionId: number; chunkSizeBytes: number; metadataLv: string; dataLv: string } | null;
}

export interface PoolOptions extends NamingOptions {
  /** Disk images holding an LVM thin pool (direct-lvm): the pool's _tmeta / _tdata are read through LVM's extents. */
  images?: string[];
  metadata?: string;
  data?: string;
  metadataSnap?: boolean;
  /** Free space below this fraction is a finding (Docker's dm.min_free_space, default 10 %). */
  minFreeFraction?: number;
}

export const SORT_FIELDS = ['id', 'mapped', 'exclusive', 'shared', 'transaction', 'created', 'name'] as const;
export type SortField = (typeof SORT_FIELDS)[number];

function space(total: number, used: number, unit: number): SpaceFacts {
  const free = Math.max(0, total - used);
  return { totalBlocks: total, usedBlocks: used, freeBlocks: free, totalBytes: total * unit, usedBytes: used * unit, freeBytes: free * unit, usedPercent: percent(used, total) };
}

/** The loop-lvm files of a Docker root (`devicemapper/devicemapper/{metadata,data}`). */
export function loopFiles(root: string): { metadata: string; data: string } {
  return { metadata: path.join(root, 'devicemapper', 'devicemapper', 'metadata'), data: path.join(root, 'devicemapper', 'devicemapper', 'data') };
}

export interface PoolSource {
  pool: ThinPool;
  /** The metadata file, or for an LVM pool `image: vg/lv_tmeta`. */
  metadataFile: string;
  dataFile: string | null;
  lvm: LvmThinPool | null;
  lvmFindings: LvmFinding[];
}

/** The LVM pool name to look for: --pool, dm.thinpooldev, or direct-lvm's docker-thinpool; null: the only one. */
function lvmPoolName(root: DockerRoot | null, opts: PoolOptions): string | null {
  if (opts.pool) return opts.pool;
  if (!root) return null;
  const n = resolveNaming(root.root, opts);
  return n.externalPool ? n.poolName : null;
}

export function openRootPool(root: DockerRoot | null, opts: PoolOptions): PoolSource {
  if (opts.images?.length && !opts.metadata) {
    const { pool: lvm, findings } = locateLvmPool(opts.images, { pool: lvmPoolName(root, opts) });
    const label = lvm.metadata?.label ?? `${lvm.vg}/${lvm.metadataLv}`;
    try {
      return { pool: openLvmPoolMetadata(lvm, { metadataSnap: opts.metadataSnap }), metadataFile: label, dataFile: lvm.data?.label ?? null, lvm, lvmFindings: findings };
    } catch (e) {
      throw namingFile(e, label);
    }
  }
  let metadataFile = opts.metadata;
  let dataFile = opts.data ?? null;
  if (!metadataFile) {
    if (!root) throw new DmiError('USAGE', 'name the pool metadata with --metadata FILE, the disk images of a direct-lvm host with --image, or a Docker root with --root');
    const files = loopFiles(root.root);
    if (!fs.existsSync(files.metadata)) {
      throw new DmiError('NOT_FOUND', `${files.metadata}: no loop-lvm pool metadata (a direct-lvm or external pool keeps it in an LV: pass --image <disk image> (repeatable), or --metadata <tmeta device or file>)`);
    }
    metadataFile = files.metadata;
    dataFile ??= fs.existsSync(files.data) ? files.data : null;
  }
  try {
    return { pool: openPool(metadataFile, { metadataSnap: opts.metadataSnap }), metadataFile, dataFile, lvm: null, lvmFindings: [] };
  } catch (e) {
    throw namingFile(e, metadataFile);
  }
}

function describeOwner(model: Model | null, rec: DeviceRecord | undefined): { role: PoolDevice['role']; owner: string; containerId: string | null; containerName: string | null } {
  if (!model) return { role: 'unknown', owner: '-', containerId: null, containerName: null };
  if (!rec) return { role: 'orphan', owner: 'orphan (no Docker record)', containerId: null, containerName: null };
  const o = ownerOf(model, rec.hash);
  const who = o.containerName || o.containerId?.slice(0, 12);
  const imgs = o.imageNames?.length ? o.imageNames.join(', ') : o.imageIds?.map((i) => `sha256:${i.slice(0, 12)}`).join(', ');
  const owner =
    o.role === 'base' ? 'base device' : o.role === 'container' ? `container ${who}` : o.role === 'init' ? `init of ${who}` : o.role === 'layer' ? `image layer${imgs ? ` of ${imgs}` : ''}` : 'unreferenced record';
  return { role: o.role, owner, containerId: o.containerId ?? null, containerName: o.containerName ?? null };
}

/** Metadata errors name the block; the user also needs the file. */
function namingFile(e: unknown, file: string): unknown {
  if (e instanceof DmiError && !e.message.includes(file)) return new DmiError(e.code, `${file}: ${e.message}`, { ...(e.details ?? {}), path: file });
  return e;
}

export function poolAudit(root: DockerRoot | null, opts: PoolOptions = {}): PoolReport {
  const src = openRootPool(root, opts);
  const { pool, metadataFile } = src;
  try {
    return audit(pool, root, src, opts);
  } catch (e) {
    throw namingFile(e, metadataFile);
  } finally {
    pool.close();
  }
}

function audit(pool: ThinPool, root: DockerRoot | null, src: PoolSource, opts: PoolOptions): PoolReport {
  const { metadataFile, dataFile, lvm } = src;
  const sb = pool.superblock;
  const bs = pool.dataBlockBytes;
  const details = pool.devices();
  const usage = pool.usage();
  const sm = pool.spaceMaps();
  const model = root ? loadModel(root) : null;
  const records = root ? root.recordSet() : null;
  const byId = new Map<number, DeviceRecord>();
  for (const r of records?.devices ?? []) if (!byId.has(r.deviceId) || !r.deleted) byId.set(r.deviceId, r);
  const naming = root ? resolveNaming(root.root, opts) : null;

  const devices: PoolDevice[] = [];
  for (const [id, d] of details) {
    const u = usage.get(id) ?? { mapped: d.mappedBlocks, exclusive: 0, shared: d.mappedBlocks };
    const rec = byId.get(id);
    devices.push({
      ...usageView(id, u, bs),
      ...describeOwner(model, rec),
      hash: rec ? rec.hash : null,
      transactionId: d.transactionId,
      creationTime: d.creationTime,
      snapTime: d.snapshottedTime,
      size: rec?.size ?? null,
    });
  }

  const data = space(sm.data.nrBlocks, sm.data.used, bs);
  const metadata = space(sm.metadata.nrBlocks, sm.metadata.used, 4096);
  const findings: Finding[] = [];
  const poolName = naming?.poolName ?? '<pool>';
  const minFree = opts.minFreeFraction ?? 0.1;

  if (sb.needsCheck) {
    findings.push({ kind: 'needs-check', severity: 'critical', message: 'the pool metadata has needs_check set: the kernel found an error and keeps the pool read-only', evidence: { flags: sb.flags }, remedy: 'stop Docker, copy the metadata, run thin_check on the copy, then thin_repair into a new metadata device; do not clear the flag blindly' });
  }
  for (const [kind, name, s] of [['data-space-low', 'data', data], ['metadata-space-low', 'metadata', metadata]] as const) {
    if (s.totalBlocks > 0 && s.freeBlocks < s.totalBlocks * minFree) {
      findings.push({
        kind,
        severity: 'critical',
        message: `pool ${name} space is ${s.usedPercent}% used: ${humanBytes(s.freeBytes)} free, under Docker's dm.min_free_space (${minFree * 100}%): new containers and layers are refused`,
        evidence: { usedBlocks: s.usedBlocks, totalBlocks: s.totalBlocks, freeBytes: s.freeBytes },
        remedy: name === 'data' ? 'remove unused containers and images (docker system prune), delete orphaned thin devices listed here, or grow the data device' : 'grow the metadata device (lvextend --poolmetadatasize for LVM pools); remove unused devices',
      });
    }
  }

  if (model && records) {
    const recIds = new Set(records.devices.map((r) => r.deviceId));
    for (const d of devices) {
      if (d.role !== 'orphan') continue;
      findings.push({
        kind: 'orphan-device',
        severity: 'warning',
        message: `thin device ${d.deviceId} is in the pool but no Docker record names it; it holds ${humanBytes(d.exclusiveBytes)} no other device shares`,
        evidence: { deviceId: d.deviceId, mappedBytes: d.mappedBytes, exclusiveBytes: d.exclusiveBytes, transactionId: d.transactionId },
        remedy: `if nothing uses it (not active: dmsetup ls), free it with: dmsetup message ${poolName} 0 'delete ${d.deviceId}'`,
      });
    }
    for (const r of records.devices) {
      if (!details.has(r.deviceId)) {
        findings.push({
          kind: 'record-without-device',
          severity: 'warning',
          message: `record ${r.hash || 'base'} names thin device ${r.deviceId}, which is not in the pool`,
          evidence: { file: r.file, deviceId: r.deviceId, owner: describeOwner(model, r).owner },
          remedy: 'the device is gone (a delete that finished in the pool but not on disk): remove the container or image with docker rm / rmi; Docker treats the missing device as deleted',
        });
      }
      const who = describeOwner(model, r);
      if (who.role === 'unreferenced' && details.has(r.deviceId)) {
        const u = usage.get(r.deviceId);
        findings.push({
          kind: 'unreferenced-record',
          severity: r.deleted ? 'info' : 'warning',
          message: `record ${r.hash} (device ${r.deviceId}) is named by no container or image layer: a leaked device holding ${humanBytes((u?.exclusive ?? 0) * bs)} of its own`,
          evidence: { file: r.file, deviceId: r.deviceId, exclusiveBytes: (u?.exclusive ?? 0) * bs, deleted: r.deleted },
          remedy: `Docker will never delete it: with Docker stopped, dmsetup message ${poolName} 0 'delete ${r.deviceId}' (pool active) and remove ${r.file}`,
        });
      }
      if (r.deleted) {
        findings.push({
          kind: 'deleted-record',
          severity: 'info',
          message: `record ${r.hash} (device ${r.deviceId}) is marked deleted: deferred deletion is pending`,
          evidence: { file: r.file, deviceId: r.deviceId },
          remedy: 'Docker retries every 30 s and at start; if it stays, find what holds the device open (dmsetup info, grep the device name in /proc/*/mountinfo) and release it',
        });
      }
      if (r.transactionId > sb.transactionId) {
        findings.push({
          kind: 'record-transaction-ahead',
          severity: 'warning',
          message: `record ${r.hash || 'base'} has transaction id ${r.transactionId}, ahead of the pool's ${sb.transactionId}`,
          evidence: { file: r.file, recordTransactionId: r.transactionId, poolTransactionId: sb.transactionId },
          remedy: 'the pool metadata is older than Docker\'s records (restored or replaced pool?): check that this is the pool Docker used',
        });
      }
    }
    const t = records.transaction;
    if (t && t.openTransactionId > sb.transactionId) {
      findings.push({
        kind: 'open-transaction',
        severity: 'warning',
        message: `transaction ${t.openTransactionId} is open (pool at ${sb.transactionId}): Docker will roll it back at start, deleting device ${t.deviceId} (${t.deviceHash || 'base'})`,
        evidence: { openTransactionId: t.openTransactionId, poolTransactionId: sb.transactionId, deviceId: t.deviceId, deviceHash: t.deviceHash },
        remedy: 'nothing to do if Docker starts normally; to keep that device, copy it out (dminspect export) before starting Docker',
      });
    } else if (t && t.openTransactionId < sb.transactionId) {
      findings.push({ kind: 'stale-transaction', severity: 'info', message: `transaction-metadata says ${t.openTransactionId}, below the pool's ${sb.transactionId} (Docker logs "Open Transaction id is less than pool transaction id" and carries on)`, evidence: { openTransactionId: t.openTransactionId, poolTransactionId: sb.transactionId }, remedy: 'none needed' });
    }
    const next = records.deviceSet?.nextDeviceId;
    const highest = Math.max(-1, ...recIds, ...details.keys());
    if (next !== null && next !== undefined && next < highest) {
      findings.push({
        kind: 'next-device-id-behind',
        severity: 'info',
        message: `next_device_id ${next} is below the highest id in use (${highest}): Docker will skip used ids, and ids in the pool without a record cost it a retry`,
        evidence: { nextDeviceId: next, highestInUse: highest },
        remedy: 'none needed unless creates fail with "Device ID exists in pool but it is supposed to be unused"',
      });
    }
    const known = new Set(records.devices.map((r) => r.hash));
    for (const m of root!.mntDirs()) {
      if (!known.has(m)) {
        findings.push({ kind: 'mnt-without-record', severity: 'info', message: `mnt/${m} has no device record`, evidence: { dir: path.join(root!.driverHome, 'mnt', m) }, remedy: 'a leftover mount point: if nothing is mounted there, rmdir it' });
      }
    }
    for (const f of records.tmpFiles) {
      findings.push({ kind: 'stale-tmp-file', severity: 'info', message: `${path.basename(f)} is a temporary file left by an interrupted metadata write`, evidence: { file: f }, remedy: 'remove it while Docker is stopped' });
    }
    for (const p of records.problems) findings.push({ kind: 'bad-record', severity: 'warning', message: p.message, evidence: { file: p.file }, remedy: 'inspect the file; Docker may fail to start on it' });
  }

  if (lvm) findings.push(...src.lvmFindings, ...poolFindings(lvm, pool).findings);

  const order: Record<Severity, number> = { critical: 0, warning: 1, info: 2 };
  findings.sort((a, b) => order[a.severity] - order[b.severity]);
  return {
    metadataFile,
    dataFile,
    root: root?.root ?? null,
    poolName: lvm?.dmName ?? naming?.poolName ?? null,
    metadataSnap: !!opts.metadataSnap,
    version: sb.version,
    time: sb.time,
    transactionId: sb.transactionId,
    needsCheck: sb.needsCheck,
    heldMetadataSnapshot: pool.liveSuperblock.metadataSnap || null,
    dataBlockSectors: pool.dataBlockSectors,
    dataBlockBytes: bs,
    data,
    metadata,
    devices,
    findings,
    spaceMapProblems: [...sm.data.problems, ...sm.metadata.problems],
    lvm: lvm ? { vg: lvm.vg, lv: lvm.lv, dmName: lvm.dmName, transactionId: lvm.transactionId, chunkSizeBytes: lvm.chunkSizeBytes, metadataLv: lvm.metadataLv, dataLv: lvm.dataLv } : null,
  };
}

export function sortDevices(devices: PoolDevice[], field: SortField): PoolDevice[] {
  const key: Record<SortField, (d: PoolDevice) => number | string> = {
    id: (d) => d.deviceId,
    mapped: (d) => -d.mappedBlocks,
    exclusive: (d) => -d.exclusiveBlocks,
    shared: (d) => -d.sharedBlocks,
    transaction: (d) => d.transactionId,
    created: (d) => d.creationTime,
    name: (d) => d.owner,
  };
  const k = key[field];
  return [...devices].sort((a, b) => {
    const x = k(a);
    const y = k(b);
    return x < y ? -1 : x > y ? 1 : a.deviceId - b.deviceId;
  });
}

/**
 * Mapped / exclusive / shared of some devices, from the pool metadata of the root (or --metadata). Null when the
 * root has no loop-lvm metadata and none was named.
 */
export function deviceUsage(root: DockerRoot, ids: number[], opts: PoolOptions = {}): Map<number, DeviceUsageView | null> | null {
  if (!opts.metadata && !opts.images?.length && !fs.existsSync(loopFiles(root.root).metadata)) return null;
  const { pool } = openRootPool(root, opts);
  try {
    const usage = pool.usage();
    const bs = pool.dataBlockBytes;
    const out = new Map<number, DeviceUsageView | null>();
    for (const id of ids) {
      const u = usage.get(id);
      out.set(id, u ? usageView(id, u, bs) : null);
    }
    return out;
  } finally {
    pool.close();
  }
}
