/**
 * The pool audit's findings, one named rule each. A rule looks at the audit's facts (pool metadata joined with
 * Docker's records) and returns findings: kind, severity, message, evidence and remedy (`Finding`, src/finding.ts).
 * LVM's findings (direct-lvm) are in lvm.ts.
 */
import * as path from 'node:path';
import type { DeviceRecord, RecordSet } from '../docker/records.js';
import type { DockerRoot } from '../docker/root.js';
import type { Finding } from '../finding.js';
import type { KernelRule, Superblock } from '../thin/index.js';
import { humanBytes } from '../util/units.js';
import type { Model } from '../model/join.js';
import { poolDeviceOwner } from '../model/owner.js';
import type { LiveFindingKind } from './live-rules.js';
import type { LvmFindingKind } from './lvm.js';

export type PoolFindingKind =
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

/** Every kind the audit can report. */
export type FindingKind = PoolFindingKind | LvmFindingKind | LiveFindingKind;

export type PoolFinding = Finding<FindingKind>;

export interface SpaceFacts {
  totalBlocks: number;
  usedBlocks: number;
  freeBlocks: number;
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
  usedPercent: number;
}

/**
 * Metadata space as the kernel counts it: `usedBlocks` = allocated on disk + the kernel's reserve (Linux ≥ 4.20,
 * thin/reserve.ts); the findings and the alerts act on it.
 */
export interface MetadataSpaceFacts extends SpaceFacts {
  /** Blocks the on-disk space map counts as allocated. */
  allocatedBlocks: number;
  /** Blocks the kernel holds back and reports as used (0 under the `none` rule). */
  reserveBlocks: number;
  /**
   * Which rule gave `usedBlocks`: `reserve` (Linux ≥ 4.20), `none` (older kernels), or `kernel`: a live pool,
   * `usedBlocks` is the kernel's own figure (`dmsetup status`) and `allocatedBlocks` = used − reserve.
   */
  kernelRule: KernelRule | 'kernel';
}

/** A thin device as the rules see it. */
export interface AuditDevice {
  deviceId: number;
  role: string;
  exclusiveBytes: number;
  mappedBytes: number;
  transactionId: number;
}

/** The facts the rules read. `model` and `records` are null without a Docker root (`--metadata` alone). */
export interface AuditFacts {
  superblock: Superblock;
  poolName: string;
  data: SpaceFacts;
  metadata: MetadataSpaceFacts;
  /** Below this free fraction a space is low (Docker's dm.min_free_space). */
  minFreeFraction: number;
  devices: AuditDevice[];
  /** Thin ids the pool has, and each one's exclusive blocks. */
  inPool: Map<number, { exclusive: number }>;
  dataBlockBytes: number;
  root: DockerRoot | null;
  model: Model | null;
  records: RecordSet | null;
}

export function needsCheckRule(f: AuditFacts): PoolFinding[] {
  if (!f.superblock.needsCheck) return [];
  return [
    {
      kind: 'needs-check',
      severity: 'critical',
      message: 'the pool metadata has needs_check set: the kernel found an error and keeps the pool read-only',
      evidence: { flags: f.superblock.flags },
      remedy:
        'stop Docker, copy the metadata, run thin_check on the copy, then thin_repair into a new metadata device; do not clear the flag blindly',
    },
  ];
}

export function spaceLowRule(f: AuditFacts): PoolFinding[] {
  const out: PoolFinding[] = [];
  for (const [kind, name, s] of [
    ['data-space-low', 'data', f.data],
    ['metadata-space-low', 'metadata', f.metadata],
  ] as const) {
    if (s.totalBlocks > 0 && s.freeBlocks < s.totalBlocks * f.minFreeFraction) {
      out.push({
        kind,
        severity: 'critical',
        message: `pool ${name} space is ${s.usedPercent}% used${'reserveBlocks' in s && s.reserveBlocks > 0 ? ` as the kernel counts it (${s.allocatedBlocks} blocks allocated + ${s.reserveBlocks} reserved)` : ''}: ${humanBytes(s.freeBytes)} free, under Docker's dm.min_free_space (${f.minFreeFraction * 100}%): new containers and layers are refused`,
        evidence: {
          usedBlocks: s.usedBlocks,
          totalBlocks: s.totalBlocks,
          freeBytes: s.freeBytes,
          ...('reserveBlocks' in s
            ? { allocatedBlocks: s.allocatedBlocks, reserveBlocks: s.reserveBlocks, kernelRule: s.kernelRule }
            : {}),
        },
        remedy:
          name === 'data'
            ? 'remove unused containers and images (docker system prune), delete orphaned thin devices listed here, or grow the data device'
            : 'grow the metadata device (lvextend --poolmetadatasize for LVM pools); remove unused devices',
      });
    }
  }
  return out;
}

export function orphanDeviceRule(f: AuditFacts): PoolFinding[] {
  if (!f.model) return [];
  return f.devices
    .filter((d) => d.role === 'orphan')
    .map((d) => ({
      kind: 'orphan-device' as const,
      severity: 'warning' as const,
      message: `thin device ${d.deviceId} is in the pool but no Docker record names it; it holds ${humanBytes(d.exclusiveBytes)} no other device shares`,
      evidence: {
        deviceId: d.deviceId,
        mappedBytes: d.mappedBytes,
        exclusiveBytes: d.exclusiveBytes,
        transactionId: d.transactionId,
      },
      remedy: `if nothing uses it (not active: dmsetup ls), free it with: dmsetup message ${f.poolName} 0 'delete ${d.deviceId}'`,
    }));
}

/** Rules over each Docker device record: gone from the pool, unreferenced, deleted, ahead of the pool. */
export function recordRules(f: AuditFacts): PoolFinding[] {
  if (!f.model || !f.records) return [];
  const out: PoolFinding[] = [];
  const sb = f.superblock;
  for (const r of f.records.devices) {
    const who = poolDeviceOwner(f.model, r);
    const inPool = f.inPool.get(r.deviceId);
    if (!inPool) {
      out.push({
        kind: 'record-without-device',
        severity: 'warning',
        message: `record ${r.hash || 'base'} names thin device ${r.deviceId}, which is not in the pool`,
        evidence: { file: r.file, deviceId: r.deviceId, owner: who.owner },
        remedy:
          'the device is gone (a delete that finished in the pool but not on disk): remove the container or image with docker rm / rmi; Docker treats the missing device as deleted',
      });
    }
    if (who.role === 'unreferenced' && inPool) {
      const own = inPool.exclusive * f.dataBlockBytes;
      out.push({
        kind: 'unreferenced-record',
        severity: r.deleted ? 'info' : 'warning',
        message: `record ${r.hash} (device ${r.deviceId}) is named by no container or image layer: a leaked device holding ${humanBytes(own)} of its own`,
        evidence: { file: r.file, deviceId: r.deviceId, exclusiveBytes: own, deleted: r.deleted },
        remedy: `Docker will never delete it: with Docker stopped, dmsetup message ${f.poolName} 0 'delete ${r.deviceId}' (pool active) and remove ${r.file}`,
      });
    }
    if (r.deleted) {
      out.push({
        kind: 'deleted-record',
        severity: 'info',
        message: `record ${r.hash} (device ${r.deviceId}) is marked deleted: deferred deletion is pending`,
        evidence: { file: r.file, deviceId: r.deviceId },
        remedy:
          'Docker retries every 30 s and at start; if it stays, find what holds the device open (dmsetup info, grep the device name in /proc/*/mountinfo) and release it',
      });
    }
    if (r.transactionId > sb.transactionId) {
      out.push({
        kind: 'record-transaction-ahead',
        severity: 'warning',
        message: `record ${r.hash || 'base'} has transaction id ${r.transactionId}, ahead of the pool's ${sb.transactionId}`,
        evidence: { file: r.file, recordTransactionId: r.transactionId, poolTransactionId: sb.transactionId },
        remedy:
          "the pool metadata is older than Docker's records (restored or replaced pool?): check that this is the pool Docker used",
      });
    }
  }
  return out;
}

export function transactionRule(f: AuditFacts): PoolFinding[] {
  const t = f.model ? f.records?.transaction : null;
  const pool = f.superblock.transactionId;
  if (t && t.openTransactionId > pool) {
    return [
      {
        kind: 'open-transaction',
        severity: 'warning',
        message: `transaction ${t.openTransactionId} is open (pool at ${pool}): Docker will roll it back at start, deleting device ${t.deviceId} (${t.deviceHash || 'base'})`,
        evidence: {
          openTransactionId: t.openTransactionId,
          poolTransactionId: pool,
          deviceId: t.deviceId,
          deviceHash: t.deviceHash,
        },
        remedy:
          'nothing to do if Docker starts normally; to keep that device, copy it out (dminspect export) before starting Docker',
      },
    ];
  }
  if (t && t.openTransactionId < pool) {
    return [
      {
        kind: 'stale-transaction',
        severity: 'info',
        message: `transaction-metadata says ${t.openTransactionId}, below the pool's ${pool} (Docker logs "Open Transaction id is less than pool transaction id" and carries on)`,
        evidence: { openTransactionId: t.openTransactionId, poolTransactionId: pool },
        remedy: 'none needed',
      },
    ];
  }
  return [];
}

export function nextDeviceIdRule(f: AuditFacts): PoolFinding[] {
  if (!f.model || !f.records) return [];
  const next = f.records.deviceSet?.nextDeviceId;
  const highest = Math.max(-1, ...f.records.devices.map((r) => r.deviceId), ...f.inPool.keys());
  if (next === null || next === undefined || next >= highest) return [];
  return [
    {
      kind: 'next-device-id-behind',
      severity: 'info',
      message:
        `next_device_id ${next} is below the highest id in use (${highest}): Docker writes deviceset-metadata only when ` +
        'it sets up the base device and at shutdown, so while the daemon runs this lags by design; Docker skips used ids, ' +
        'and ids in the pool without a record cost it a retry',
      evidence: { nextDeviceId: next, highestInUse: highest },
      remedy:
        'none needed (expected on a running daemon) unless creates fail with "Device ID exists in pool but it is supposed to be unused"',
    },
  ];
}

/** Leftovers on disk: mount points without a record, temporaries of interrupted writes, unreadable records. */
export function leftoverRules(f: AuditFacts): PoolFinding[] {
  if (!f.model || !f.records || !f.root) return [];
  const out: PoolFinding[] = [];
  const known = new Set(f.records.devices.map((r: DeviceRecord) => r.hash));
  for (const m of f.root.mntDirs()) {
    if (!known.has(m))
      out.push({
        kind: 'mnt-without-record',
        severity: 'info',
        message: `mnt/${m} has no device record`,
        evidence: { dir: path.join(f.root.driverHome, 'mnt', m) },
        remedy: 'a leftover mount point: if nothing is mounted there, rmdir it',
      });
  }
  for (const file of f.records.tmpFiles) {
    out.push({
      kind: 'stale-tmp-file',
      severity: 'info',
      message: `${path.basename(file)} is a temporary file left by an interrupted metadata write`,
      evidence: { file },
      remedy: 'remove it while Docker is stopped',
    });
  }
  for (const p of f.records.problems)
    out.push({
      kind: 'bad-record',
      severity: 'warning',
      message: p.message,
      evidence: { file: p.file },
      remedy: 'inspect the file; Docker may fail to start on it',
    });
  return out;
}

/** The pool rules, in report order (before sorting by severity). */
export const POOL_RULES: readonly ((f: AuditFacts) => PoolFinding[])[] = [
  needsCheckRule,
  spaceLowRule,
  orphanDeviceRule,
  recordRules,
  transactionRule,
  nextDeviceIdRule,
  leftoverRules,
];
