/**
 * The pool audit: the pool's own binary metadata (read offline by thin/, opened by pool-source/) joined with
 * Docker's records. Pool facts, per-device mapped / exclusive / shared usage with the name each device has to
 * Docker, and findings — each with a severity, the evidence and the remedy (the rules: findings.ts, lvm.ts).
 */
import type { DeviceRecord } from '../docker/records.js';
import type { DockerRoot } from '../docker/root.js';
import { resolveNaming } from '../docker/naming.js';
import { sortFindings } from '../finding.js';
import { locatePool, withPool, type PoolSource, type PoolSourceOptions } from '../pool-source/index.js';
import { kernelMetadataAccounting, type KernelRule } from '../thin/index.js';
import { percent } from '../util/units.js';
import { loadModel } from '../model/join.js';
import { poolDeviceOwner, type OwnerRole } from '../model/owner.js';
import { usageView, type DeviceUsageView } from '../model/usage.js';
import { POOL_RULES, type AuditFacts, type MetadataSpaceFacts, type PoolFinding, type SpaceFacts } from './findings.js';
import { lvmPoolFindings } from './lvm.js';

export type { FindingKind, MetadataSpaceFacts, SpaceFacts } from './findings.js';
export type Finding = PoolFinding;

export interface PoolDevice extends DeviceUsageView {
  role: OwnerRole;
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
  metadata: MetadataSpaceFacts;
  devices: PoolDevice[];
  findings: Finding[];
  /** Problems the space maps reported (counters vs bitmaps). */
  spaceMapProblems: string[];
  /** Direct-lvm: the LVM thin pool the metadata was read from (`--image`). */
  lvm: { vg: string; lv: string; dmName: string; transactionId: number; chunkSizeBytes: number; metadataLv: string; dataLv: string } | null;
}

export interface PoolOptions extends PoolSourceOptions {
  /** How the kernel counts metadata space (thin/reserve.ts): `reserve` (Linux ≥ 4.20, default) or `none`. */
  kernelRule?: KernelRule;
  /** Free space below this fraction is a finding (Docker's dm.min_free_space, default 10 %). */
  minFreeFraction?: number;
}

export const SORT_FIELDS = ['id', 'mapped', 'exclusive', 'shared', 'transaction', 'created', 'name'] as const;
export type SortField = (typeof SORT_FIELDS)[number];

function space(total: number, used: number, unit: number): SpaceFacts {
  const free = Math.max(0, total - used);
  return { totalBlocks: total, usedBlocks: used, freeBlocks: free, totalBytes: total * unit, usedBytes: used * unit, freeBytes: free * unit, usedPercent: percent(used, total) };
}

/** Audits the pool of `root` (or the one named by --metadata / --image when `root` is null). */
export function poolAudit(root: DockerRoot | null, opts: PoolOptions = {}): PoolReport {
  return withPool(locatePool(root?.root ?? null, opts), { metadataSnap: opts.metadataSnap }, (src) => audit(src, root, opts));
}

function audit(src: PoolSource, root: DockerRoot | null, opts: PoolOptions): PoolReport {
  const { pool, metadataFile, lvm } = src;
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
  const inPool = new Map<number, { exclusive: number }>();
  for (const [id, d] of details) {
    const u = usage.get(id) ?? { mapped: d.mappedBlocks, exclusive: 0, shared: d.mappedBlocks };
    inPool.set(id, { exclusive: usage.get(id)?.exclusive ?? 0 });
    const rec = byId.get(id);
    const o = poolDeviceOwner(model, rec);
    devices.push({
      ...usageView(id, u, bs),
      role: o.role,
      owner: o.owner,
      containerId: o.containerId,
      containerName: o.containerName,
      hash: rec ? rec.hash : null,
      transactionId: d.transactionId,
      creationTime: d.creationTime,
      snapTime: d.snapshottedTime,
      size: rec?.size ?? null,
    });
  }

  const data = space(sm.data.nrBlocks, sm.data.used, bs);
  const acct = kernelMetadataAccounting(sm.metadata.nrBlocks, sm.metadata.used, opts.kernelRule ?? 'reserve');
  const metadata: MetadataSpaceFacts = {
    ...space(acct.totalBlocks, acct.usedBlocks, 4096),
    allocatedBlocks: acct.allocatedBlocks,
    reserveBlocks: acct.reserveBlocks,
    kernelRule: acct.rule,
  };
  const facts: AuditFacts = {
    superblock: sb, poolName: naming?.poolName ?? '<pool>', data, metadata, minFreeFraction: opts.minFreeFraction ?? 0.1,
    devices, inPool, dataBlockBytes: bs, root, model, records,
  };
  const findings: Finding[] = POOL_RULES.flatMap((rule) => rule(facts));
  if (lvm) findings.push(...src.lvmFindings, ...lvmPoolFindings(lvm, pool, acct.rule).findings);
  sortFindings(findings);
  return {
    metadataFile,
    dataFile: src.data?.label ?? null,
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
  }
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

