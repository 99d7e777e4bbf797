/**
 * LVM's findings for direct-lvm pools: LVM's view of the thin pool (transaction_id, chunk size, metadata LV
 * use) checked against the pool's own superblock, the `lvm` listing, and whether Docker's pool is in the images.
 */
import { isDmiError } from '../errors.js';
import type { Finding } from '../finding.js';
import { dmName, lvBytes, scanImages, SECTOR, type ScannedVg } from '../lvm/index.js';
import { kernelMetadataAccounting, type KernelRule, type ThinPool } from '../thin/index.js';
import {
  describeThinPool,
  openLvmPoolMetadata,
  problemToFinding,
  thinPoolsOf,
  type LvmLocateKind,
  type LvmThinPool,
} from '../pool-source/lvm.js';

export type LvmFindingKind =
  | LvmLocateKind
  | 'transaction-id-mismatch'
  | 'transaction-id-pending'
  | 'transaction-id-unchecked'
  | 'metadata-nearly-full'
  | 'chunk-size-differs'
  | 'data-lv-too-small'
  | 'pool-metadata-unreadable'
  | 'docker-pool-not-found';

export type LvmFinding = Finding<LvmFindingKind>;

export interface PoolSuperblockFacts {
  transactionId: number;
  dataBlockSectors: number;
  dataNrBlocks: number;
  metadataNrBlocks: number;
  /** As the kernel counts it: allocated + reserve. */
  metadataUsedBlocks: number;
  metadataAllocatedBlocks: number;
  metadataReserveBlocks: number;
  metadataUsedPercent: number;
  dataUsedBlocks: number;
  thinDevices: number;
  needsCheck: boolean;
}

export interface LvmPoolCheck {
  pool: LvmThinPool;
  superblock: PoolSuperblockFacts | null;
  findings: LvmFinding[];
}

/** Metadata use at or above this percentage is a warning; above CRITICAL_PERCENT, critical. */
export const METADATA_WARN_PERCENT = 80;
export const METADATA_CRITICAL_PERCENT = 95;

/** Checks LVM's view of the pool against the pool's superblock (null `thin`: only what LVM says). */
export function lvmPoolFindings(
  pool: LvmThinPool,
  thin: ThinPool | null,
  rule: KernelRule = 'reserve',
): { superblock: PoolSuperblockFacts | null; findings: LvmFinding[] } {
  const findings: LvmFinding[] = [];
  if (!thin) return { superblock: null, findings };
  const sb = thin.liveSuperblock;
  const sm = thin.spaceMaps();
  // Metadata use as the kernel counts it (allocated + its reserve: thin/reserve.ts), what LVM's autoextend and the
  // pool's switch to read-only act on.
  const acct = kernelMetadataAccounting(sm.metadata.nrBlocks, sm.metadata.used, rule);
  const usedPct = acct.totalBlocks ? Math.round((acct.usedBlocks / acct.totalBlocks) * 10000) / 100 : 0;
  const facts: PoolSuperblockFacts = {
    transactionId: sb.transactionId,
    dataBlockSectors: thin.dataBlockSectors,
    dataNrBlocks: thin.dataNrBlocks,
    metadataNrBlocks: thin.metadataNrBlocks,
    metadataUsedBlocks: acct.usedBlocks,
    metadataAllocatedBlocks: acct.allocatedBlocks,
    metadataReserveBlocks: acct.reserveBlocks,
    metadataUsedPercent: usedPct,
    dataUsedBlocks: sm.data.used,
    thinDevices: thin.devices().size,
    needsCheck: sb.needsCheck,
  };
  const T = pool.transactionId;
  const S = sb.transactionId;
  // The dm node LVM validates: <vg>-<pool>-tpool when LVM has thin LVs in it, else <vg>-<pool>.
  const node = pool.thinVolumes.length ? `${pool.dmName}-tpool` : pool.dmName;
  const ev = { vg: pool.vg, lv: pool.lv, lvmTransactionId: T, poolTransactionId: S };
  if (T !== S) {
    if (T === 0) {
      findings.push({
        kind: 'transaction-id-unchecked',
        severity: 'info',
        evidence: ev,
        message: `LVM records transaction_id 0 for ${pool.vg}/${pool.lv}, the pool's superblock is at ${S}: LVM does not check a zero transaction_id, so activation is not blocked (Docker moves the pool's id itself)`,
        remedy: 'none needed',
      });
    } else if (S + 1 === T) {
      findings.push({
        kind: 'transaction-id-pending',
        severity: 'warning',
        evidence: ev,
        message: `LVM records transaction_id ${T} for ${pool.vg}/${pool.lv}, one above the pool's ${S}: an LVM thin operation was interrupted; LVM replays its pending messages at activation`,
        remedy: 'activate with LVM (lvchange -ay) before changing the pool with other tools',
      });
    } else {
      findings.push({
        kind: 'transaction-id-mismatch',
        severity: 'critical',
        evidence: ev,
        message: `Thin pool ${node} transaction_id is ${S}, while expected ${T}: LVM will refuse to activate ${pool.vg}/${pool.lv} (Docker cannot start its pool)`,
        remedy: `vgcfgbackup -f vg.txt ${pool.vg}; set transaction_id = ${S} in the ${pool.lv} segment; vgcfgrestore --force -f vg.txt ${pool.vg} (on the host, pool inactive; keep a copy first)`,
      });
    }
  }
  if (usedPct >= METADATA_WARN_PERCENT) {
    findings.push({
      kind: 'metadata-nearly-full',
      severity: usedPct >= METADATA_CRITICAL_PERCENT ? 'critical' : 'warning',
      evidence: {
        vg: pool.vg,
        lv: pool.metadataLv,
        used: acct.usedBlocks,
        allocated: acct.allocatedBlocks,
        reserve: acct.reserveBlocks,
        total: acct.totalBlocks,
        percent: usedPct,
      },
      message: `pool metadata LV ${pool.vg}/${pool.metadataLv} is ${usedPct}% full as the kernel counts it (${acct.usedBlocks} of ${acct.totalBlocks} 4 KiB blocks: ${acct.allocatedBlocks} allocated + ${acct.reserveBlocks} reserved): a full metadata device turns the pool read-only`,
      remedy: `lvextend --poolmetadatasize +<size> ${pool.vg}/${pool.lv} (on the host; or let LVM autoextend: thin_pool_autoextend_threshold in the docker-thinpool profile)`,
    });
  }
  if (thin.dataBlockSectors !== pool.chunkSizeSectors) {
    findings.push({
      kind: 'chunk-size-differs',
      severity: 'warning',
      evidence: { lvm: pool.chunkSizeSectors, superblock: thin.dataBlockSectors },
      message: `LVM records chunk_size ${pool.chunkSizeSectors} sectors for ${pool.vg}/${pool.lv}, the pool's superblock says ${thin.dataBlockSectors}: the metadata LV may belong to another pool`,
      remedy: 'check that the metadata and data LVs belong together',
    });
  }
  if (pool.data && thin.dataNrBlocks * thin.dataBlockBytes > pool.data.length) {
    findings.push({
      kind: 'data-lv-too-small',
      severity: 'warning',
      evidence: { dataNrBlocks: thin.dataNrBlocks, dataLvBytes: pool.data.length },
      message: `the pool's superblock counts ${thin.dataNrBlocks} data blocks of ${thin.dataBlockBytes} bytes, more than the data LV ${pool.vg}/${pool.dataLv} holds (${pool.data.length} bytes)`,
      remedy: 'check that the metadata and data LVs belong together',
    });
  }
  return { superblock: facts, findings };
}

/** Describes a pool and, when its metadata LV is readable, checks it against the superblock. */
export function checkLvmPool(svg: ScannedVg, lv: string): LvmPoolCheck {
  const findings: LvmFinding[] = [];
  const pool = describeThinPool(svg, lv, findings as Finding<LvmLocateKind>[]);
  let thin: ThinPool | null = null;
  if (pool.metadata) {
    try {
      thin = openLvmPoolMetadata(pool);
    } catch (e) {
      if (!isDmiError(e)) throw e;
      findings.push({
        kind: 'pool-metadata-unreadable',
        severity: 'critical',
        message: e.message,
        evidence: { vg: pool.vg, lv: pool.metadataLv, code: e.code },
        remedy: 'thin_check / thin_dump on the metadata LV; check the acquisition',
      });
    }
  }
  try {
    const r = lvmPoolFindings(pool, thin);
    return { pool, superblock: r.superblock, findings: [...findings, ...r.findings] };
  } catch (e) {
    if (!isDmiError(e)) throw e;
    findings.push({
      kind: 'pool-metadata-unreadable',
      severity: 'critical',
      message: e.message,
      evidence: { vg: pool.vg, lv: pool.metadataLv, code: e.code },
      remedy: 'thin_check / thin_dump on the metadata LV; check the acquisition',
    });
    return { pool, superblock: null, findings };
  } finally {
    thin?.close();
  }
}

export interface LvmListing {
  images: {
    path: string;
    size: number;
    partitionTable: string | null;
    partitions: { number: number; start: number; size: number; type: string; name: string | null }[];
  }[];
  pvs: {
    image: string;
    partition: number | null;
    start: number;
    uuid: string;
    deviceSize: number;
    available: number;
    vg: string | null;
    metadataAreas: { offset: number; size: number }[];
  }[];
  vgs: {
    name: string;
    id: string;
    seqno: number;
    extentSize: number;
    extentBytes: number;
    source: ScannedVg['source'];
    pvs: {
      key: string;
      id: string;
      device: string | null;
      peStart: number;
      peCount: number;
      image: string | null;
      offset: number | null;
    }[];
    lvs: {
      name: string;
      dmName: string;
      visible: boolean;
      status: string[];
      sizeBytes: number;
      extents: number;
      segments: {
        key: string;
        startExtent: number;
        extentCount: number;
        type: string;
        stripes: { pv: string; extent: number; image: string | null; offset: number | null }[];
        details: Record<string, unknown>;
      }[];
    }[];
  }[];
  thinPools: LvmPoolCheck[];
  findings: LvmFinding[];
}

/** Everything found in the images, for `dminspect lvm`. */
export function lvmListing(images: string[]): LvmListing {
  const scan = scanImages(images);
  const vgs: LvmListing['vgs'] = scan.vgs.map((svg) => {
    const vg = svg.vg;
    const found = (key: string) => svg.pvs.find((p) => p.key === key)?.found ?? null;
    return {
      name: vg.name,
      id: vg.id,
      seqno: vg.seqno,
      extentSize: vg.extentSize,
      extentBytes: vg.extentSize * SECTOR,
      source: svg.source,
      pvs: vg.pvs.map((p) => {
        const f = found(p.key);
        return {
          key: p.key,
          id: p.id,
          device: p.device,
          peStart: p.peStart,
          peCount: p.peCount,
          image: f?.image ?? null,
          offset: f ? f.start + p.peStart * SECTOR : null,
        };
      }),
      lvs: vg.lvs.map((lv) => ({
        name: lv.name,
        dmName: dmName(vg.name, lv.name),
        visible: lv.visible,
        status: lv.status,
        sizeBytes: lvBytes(vg, lv),
        extents: lv.extentCount,
        segments: lv.segments.map((s) => {
          const { raw, stripes, key, startExtent, extentCount, type, ...details } = s;
          void raw;
          return {
            key,
            startExtent,
            extentCount,
            type,
            details,
            stripes: (stripes ?? []).map((st) => {
              const f = found(st.pv);
              const pv = vg.pvs.find((p) => p.key === st.pv)!;
              return {
                pv: st.pv,
                extent: st.extent,
                image: f?.image ?? null,
                offset: f ? f.start + (pv.peStart + st.extent * vg.extentSize) * SECTOR : null,
              };
            }),
          };
        }),
      })),
    };
  });
  const thinPools = thinPoolsOf(scan).map(({ svg, lv }) => checkLvmPool(svg, lv));
  return {
    images: scan.images.map((i) => ({
      path: i.path,
      size: i.size,
      partitionTable: i.partitionTable,
      partitions: i.partitions.map(({ number, start, size, type, name }) => ({ number, start, size, type, name })),
    })),
    pvs: scan.pvs.map((p) => ({
      image: p.image,
      partition: p.partition?.number ?? null,
      start: p.start,
      uuid: p.label.uuid,
      deviceSize: p.label.deviceSize,
      available: p.available,
      vg: p.metadata?.vg.name ?? null,
      metadataAreas: p.label.metadataAreas,
    })),
    vgs,
    thinPools,
    findings: [...scan.problems.map(problemToFinding), ...thinPools.flatMap((t) => t.findings)],
  };
}

/**
 * Docker's pool among those in the images: `docker-pool-not-found` when the pool Docker uses (`name`, from the
 * root's naming or --pool) is not one of them.
 */
export function dockerPoolCheck(
  listing: LvmListing,
  name: string,
  source: string,
): { dockerPool: { name: string; source: string; found: boolean }; finding: LvmFinding | null } {
  const found = listing.thinPools.some((t) => t.pool.dmName === name || `${t.pool.vg}/${t.pool.lv}` === name);
  const finding: LvmFinding | null = found
    ? null
    : {
        kind: 'docker-pool-not-found',
        severity: 'warning',
        message: `Docker's pool ${name} (${source}) is not among the thin pools in these images`,
        evidence: { pool: name, thinPools: listing.thinPools.map((t) => t.pool.dmName) },
        remedy: 'add the image of every disk of the volume group, or name the pool with --pool',
      };
  return { dockerPool: { name, source, found }, finding };
}
