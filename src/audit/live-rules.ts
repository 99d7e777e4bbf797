/**
 * A live pool's facts as the kernel states them (`dmsetup status`, `dmsetup table`), the findings they raise
 * (pool mode, queue_if_no_space near full, the table against the metadata) and their shape in the report.
 * Pure: the commands are run by pool-source/live.ts.
 */
import type { ThinPoolStatus } from '../dm/dmsetup.js';
import type { Finding } from '../finding.js';
import type { LiveLocation, StaleHoldCleared } from '../pool-source/live.js';
import { metadataReserve, type Superblock } from '../thin/index.js';
import type { DaemonPoolView } from './daemon-view.js';
import type { SpaceFacts } from './findings.js';

export type LiveFindingKind =
  | 'pool-read-only'
  | 'pool-out-of-data-space'
  | 'pool-failed'
  | 'writes-will-hang'
  | 'table-block-size-differs'
  | 'table-size-differs'
  | 'table-features-differ'
  | 'stale-hold-cleared'
  | 'daemon-disagrees';

/** Every live kind with the severities it can have (metrics: each series exists at 0). */
export const LIVE_FINDING_SEVERITIES = {
  'pool-read-only': ['critical'],
  'pool-out-of-data-space': ['critical'],
  'pool-failed': ['critical'],
  'writes-will-hang': ['critical', 'warning'],
  'table-block-size-differs': ['critical'],
  'table-size-differs': ['warning'],
  'table-features-differ': ['info'],
  'stale-hold-cleared': ['info'],
  'daemon-disagrees': ['warning'],
} as const;

/** What the held read gave the audit. */
export interface LiveFacts {
  location: LiveLocation;
  /**
   * The figures shown: `dmsetup status` just before dminspect's reserve (the pool as it is without dminspect's own
   * hold, which costs a metadata block or more), or, reading another holder's snapshot, the status at the read.
   */
  status: ThinPoolStatus;
  /** `dmsetup status` while the snapshot was held (its held root is the one read). */
  statusHeld: ThinPoolStatus;
  /** The held root read; null: a read-only or failed pool, read without a hold. */
  heldRoot: number | null;
  /** dminspect reserved the snapshot itself (false: --metadata-snap, someone else's). */
  reserved: boolean;
  staleCleared: StaleHoldCleared | null;
  /** Metadata used as the kernel counts it, split: the reserve by the running kernel's rule, allocated = used − reserve. */
  metadata: { allocatedBlocks: number; reserveBlocks: number };
  /** `uname -r` of the running kernel. */
  kernelRelease: string;
}

/** The running kernel has the metadata reserve (Linux ≥ 4.20). */
export function kernelHasReserve(release: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return true;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > 4 || (maj === 4 && min >= 20);
}

/** Splits the kernel's metadata used figure into allocated + reserve (the reserve by the running kernel's rule). */
export function liveMetadataSplit(
  status: ThinPoolStatus,
  kernelRelease: string,
): { allocatedBlocks: number; reserveBlocks: number } {
  const reserveBlocks = metadataReserve(
    status.totalMetadataBlocks,
    kernelHasReserve(kernelRelease) ? 'reserve' : 'none',
  );
  return { allocatedBlocks: Math.max(0, status.usedMetadataBlocks - reserveBlocks), reserveBlocks };
}

type LiveFinding = Finding<LiveFindingKind>;

/** What the rules compare the kernel with: the held superblock and the pool's sizes from the metadata. */
export interface HeldFacts {
  superblock: Superblock;
  dataNrBlocks: number;
  metadataNrBlocks: number;
  data: SpaceFacts;
  minFreeFraction: number;
}

export function liveRules(l: LiveFacts, h: HeldFacts): LiveFinding[] {
  const out: LiveFinding[] = [];
  const s = l.status;
  const pool = l.location.pool;
  const ev = {
    pool,
    mode: s.mode,
    usedDataBlocks: s.usedDataBlocks,
    totalDataBlocks: s.totalDataBlocks,
    usedMetadataBlocks: s.usedMetadataBlocks,
    totalMetadataBlocks: s.totalMetadataBlocks,
  };
  if (s.mode === 'fail') {
    out.push({
      kind: 'pool-failed',
      severity: 'critical',
      message: `pool ${pool} has failed (dmsetup status: Fail): every I/O to its thin devices errors`,
      evidence: ev,
      remedy:
        'read dmesg for the metadata or data I/O error; stop Docker, copy the metadata and run thin_check on the copy, thin_repair into a new metadata device, then reload the pool',
    });
  } else if (s.mode === 'ro') {
    out.push({
      kind: 'pool-read-only',
      severity: 'critical',
      message: `pool ${pool} is read-only (the kernel switched it after a metadata error or with metadata space exhausted): writes to thin devices fail, no device can be created or deleted`,
      evidence: ev,
      remedy:
        s.usedMetadataBlocks >= s.totalMetadataBlocks
          ? 'metadata space is exhausted: grow the metadata device (lvextend --poolmetadatasize for LVM; a larger loop file + losetup -c and a table reload for loop-lvm), then reload the pool'
          : 'read dmesg for the metadata error; stop Docker, thin_check a copy of the metadata, thin_repair it, and reload the pool (needs_check stays set until then)',
    });
  } else if (s.mode === 'out_of_data_space') {
    out.push({
      kind: 'pool-out-of-data-space',
      severity: 'critical',
      message: `pool ${pool} is out of data space: writes that need a new block ${s.errorIfNoSpace ? 'fail' : 'are queued (they hang)'}`,
      evidence: ev,
      remedy:
        'grow the data device (lvextend for LVM; a larger loop file + losetup -c and a table reload for loop-lvm) or free space: docker system prune, remove orphaned thin devices; the pool resumes once blocks are free',
    });
  }
  if (
    s.mode !== 'fail' &&
    s.mode !== 'out_of_data_space' &&
    s.errorIfNoSpace === false &&
    h.data.totalBlocks > 0 &&
    h.data.freeBlocks < h.data.totalBlocks * h.minFreeFraction
  ) {
    const full = h.data.freeBlocks === 0;
    out.push({
      kind: 'writes-will-hang',
      severity: full ? 'critical' : 'warning',
      message: `pool ${pool} has queue_if_no_space and ${h.data.usedPercent}% of its data space used: when it runs out, writes to every container hang (until dm_thin_pool's no_space_timeout, default 60 s, then fail)`,
      evidence: { ...ev, errorIfNoSpace: false, freeBlocks: h.data.freeBlocks },
      remedy:
        'free or grow the data space now; to make writes fail at once instead of hanging, load the pool with the error_if_no_space feature (LVM: lvchange --errorwhenfull y)',
    });
  }
  const t = l.location.table;
  if (t.blockSectors !== h.superblock.dataBlockSize) {
    out.push({
      kind: 'table-block-size-differs',
      severity: 'critical',
      message: `dmsetup table says data blocks of ${t.blockSectors} sectors, the metadata ${h.superblock.dataBlockSize}: this metadata is not the pool's, or the table is wrong`,
      evidence: { pool, tableBlockSectors: t.blockSectors, metadataBlockSectors: h.superblock.dataBlockSize },
      remedy: 'check which metadata device the pool uses (dmsetup table) and that --pool names the right pool',
    });
  }
  if (s.totalDataBlocks !== h.dataNrBlocks || s.totalMetadataBlocks !== h.metadataNrBlocks) {
    out.push({
      kind: 'table-size-differs',
      severity: 'warning',
      message: `the kernel counts ${s.totalDataBlocks} data / ${s.totalMetadataBlocks} metadata blocks, the metadata ${h.dataNrBlocks} / ${h.metadataNrBlocks}: a resize not yet committed, or another pool's metadata`,
      evidence: {
        pool,
        kernelDataBlocks: s.totalDataBlocks,
        metadataDataBlocks: h.dataNrBlocks,
        kernelMetadataBlocks: s.totalMetadataBlocks,
        metadataMetadataBlocks: h.metadataNrBlocks,
      },
      remedy: 'run again; if it stays, check that the pool reads this metadata device',
    });
  }
  const f = new Set(t.features);
  const differ: string[] = [];
  if (f.has('error_if_no_space') !== (s.errorIfNoSpace === true) && s.errorIfNoSpace !== null)
    differ.push(
      `table ${f.has('error_if_no_space') ? 'has' : 'lacks'} error_if_no_space, status says ${s.errorIfNoSpace ? 'error' : 'queue'}_if_no_space`,
    );
  if (f.has('read_only') && s.mode === 'rw') differ.push('table has read_only, status says rw');
  if (f.has('no_discard_passdown') && s.discardPassdown === true)
    differ.push('table has no_discard_passdown, status says discard_passdown');
  if (differ.length) {
    out.push({
      kind: 'table-features-differ',
      severity: 'info',
      message: `pool ${pool}: ${differ.join('; ')} (the kernel adjusts some features to the devices: e.g. discard passdown off when the data device cannot discard)`,
      evidence: { pool, features: t.features },
      remedy: 'none needed unless the difference is unexpected',
    });
  }
  if (l.staleCleared) {
    const c = l.staleCleared;
    out.push({
      kind: 'stale-hold-cleared',
      severity: 'info',
      message: `a dminspect run (pid ${c.pid}, started ${c.startedAt || 'unknown'}) died holding the metadata snapshot of ${pool}; this run ${c.released ? 'released it' : 'found it released already'} and removed the record`,
      evidence: { ...c },
      remedy: 'none needed',
    });
  }
  return out;
}

/** The `live` object of the pool report (README: JSON). */
export interface LiveReport {
  pool: string;
  /** What was read, and how it stays coherent with the kernel's writes. */
  metadataRead: string;
  coherence: LiveLocation['coherence'];
  metadataDevice: string;
  dataDevice: string;
  data: string | null;
  /** The held root read (null: a read-only or failed pool, read without a hold), and whether dminspect reserved (and released) it. */
  heldRoot: number | null;
  reservedByDminspect: boolean;
  /** The held superblock's transaction id (the kernel's at the reserve). */
  snapshotTransactionId: number;
  kernelRelease: string;
  status: {
    transactionId: number;
    usedDataBlocks: number;
    totalDataBlocks: number;
    usedMetadataBlocks: number;
    totalMetadataBlocks: number;
    heldMetadataRoot: number | null;
    mode: ThinPoolStatus['mode'];
    needsCheck: boolean;
    /** `error_if_no_space` or `queue_if_no_space` (null when the kernel does not say). */
    noSpace: 'error_if_no_space' | 'queue_if_no_space' | null;
    discardPassdown: boolean | null;
    metadataLowWatermark: number | null;
  };
  /** `dmsetup status` while dminspect held the snapshot (metadata used includes the hold's own blocks). */
  statusWhileHeld: {
    transactionId: number;
    usedDataBlocks: number;
    usedMetadataBlocks: number;
    heldMetadataRoot: number | null;
  };
  table: { blockSectors: number; lowWaterMark: number; features: string[] };
  staleHoldCleared: StaleHoldCleared | null;
  /** `docker info`'s DriverStatus beside the kernel's figures, when a daemon using this pool answers. */
  daemon: DaemonPoolView | null;
}

export function liveReport(l: LiveFacts, held: Superblock): LiveReport {
  const s = l.status;
  return {
    pool: l.location.pool,
    metadataRead: l.location.metadata,
    coherence: l.location.coherence,
    metadataDevice: l.location.table.metadataDev,
    dataDevice: l.location.table.dataDev,
    data: l.location.data,
    heldRoot: l.heldRoot,
    reservedByDminspect: l.reserved,
    snapshotTransactionId: held.transactionId,
    kernelRelease: l.kernelRelease,
    status: {
      transactionId: s.transactionId,
      usedDataBlocks: s.usedDataBlocks,
      totalDataBlocks: s.totalDataBlocks,
      usedMetadataBlocks: s.usedMetadataBlocks,
      totalMetadataBlocks: s.totalMetadataBlocks,
      heldMetadataRoot: s.heldMetadataRoot,
      mode: s.mode,
      needsCheck: s.needsCheck,
      noSpace: s.errorIfNoSpace === null ? null : s.errorIfNoSpace ? 'error_if_no_space' : 'queue_if_no_space',
      discardPassdown: s.discardPassdown,
      metadataLowWatermark: s.metadataLowWatermark,
    },
    statusWhileHeld: {
      transactionId: l.statusHeld.transactionId,
      usedDataBlocks: l.statusHeld.usedDataBlocks,
      usedMetadataBlocks: l.statusHeld.usedMetadataBlocks,
      heldMetadataRoot: l.statusHeld.heldMetadataRoot,
    },
    table: {
      blockSectors: l.location.table.blockSectors,
      lowWaterMark: l.location.table.lowWaterMark,
      features: l.location.table.features,
    },
    staleHoldCleared: l.staleCleared,
    daemon: null,
  };
}
