/**
 * Direct-lvm hosts, offline: find Docker's thin pool inside LVM on raw disk images, say where its metadata
 * (`<pool>_tmeta`) and data (`<pool>_tdata`) LVs are as byte extents of the images — what `openPool` and an
 * exporter need — and check LVM's view of the pool against the pool's own superblock.
 */
import { DmiError, isDmiError } from '../errors.js';
import {
  dmName, findVg, locateLv, lvBytes, scanImages, SECTOR, splitDmName,
  type LocatedLv, type LvmProblem, type LvmProblemKind, type LvmScan, type ScannedVg,
} from '../lvm/index.js';
import type { Extent } from '../io/block-source.js';
import { openPool, type ThinPool } from '../thin/index.js';

export type LvmFindingKind =
  | LvmProblemKind
  | 'transaction-id-mismatch'
  | 'transaction-id-pending'
  | 'transaction-id-unchecked'
  | 'metadata-nearly-full'
  | 'chunk-size-differs'
  | 'pool-metadata-unreadable'
  | 'pool-lv-unmappable'
  | 'docker-pool-not-found';

export interface LvmFinding {
  kind: LvmFindingKind;
  severity: 'critical' | 'warning' | 'info';
  message: string;
  evidence: Record<string, unknown>;
  remedy: string;
}

/** An LV as byte extents of the images: `openPool(path, { extents, label })` reads it. */
export interface LvLocation {
  vg: string;
  lv: string;
  /** The first image (the path to pass to openPool; each extent names its own file). */
  path: string;
  extents: Required<Extent>[];
  /** LV size in bytes. */
  length: number;
  /** For messages: `disk.img: docker/thinpool_tmeta`. */
  label: string;
}

export interface ThinVolume {
  name: string;
  dmName: string;
  deviceId: number;
  transactionId: number;
  sizeBytes: number;
  visible: boolean;
}

export interface LvmThinPool {
  vg: string;
  lv: string;
  /** dm name of the pool as Docker's dm.thinpooldev names it (`docker-thinpool`). */
  dmName: string;
  /** LVM's recorded transaction_id (segment1 of the pool LV). */
  transactionId: number;
  chunkSizeSectors: number;
  chunkSizeBytes: number;
  zeroNewBlocks: boolean | null;
  discards: string | null;
  sizeBytes: number;
  metadataLv: string;
  dataLv: string;
  /** Null when the LV cannot be mapped (missing PV, truncated image…): see findings. */
  metadata: LvLocation | null;
  data: LvLocation | null;
  /** Thin LVs LVM itself made in this pool (Docker's thin devices are not LVs). */
  thinVolumes: ThinVolume[];
}

export interface PoolSuperblockFacts {
  transactionId: number;
  dataBlockSectors: number;
  dataNrBlocks: number;
  metadataNrBlocks: number;
  metadataUsedBlocks: number;
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

export interface LvmPoolOptions {
  /** The pool: a dm name (`docker-thinpool`, `/dev/mapper/docker-thinpool`) or `vg/lv`. Default: the only thin pool. */
  pool?: string | null;
}

/** Metadata use at or above this percentage is a warning; above CRITICAL_PERCENT, critical. */
export const METADATA_WARN_PERCENT = 80;
export const METADATA_CRITICAL_PERCENT = 95;

const REMEDY: Partial<Record<LvmFindingKind, string>> = {
  'metadata-checksum': 'the disk may be damaged or was captured mid-write: check the acquisition; compare with /etc/lvm/backup/<vg> from the host',
  'metadata-unparsable': 'compare with /etc/lvm/backup/<vg> from the host',
  'metadata-area-unreadable': 'check the acquisition; another metadata copy (another PV or area) is used when there is one',
  'older-metadata': 'prefer /etc/lvm/backup/<vg> from the host if it is newer; LVs created or extended after this copy are not shown',
  'metadata-seqno-differs': 'an interrupted LVM command or images taken at different times: acquire all PVs at once',
  'missing-pv': 'add the disk that holds that PV with another --image',
  'duplicate-pv': 'pass each disk once (a clone of a disk has the same PV uuid)',
  'image-truncated': 'acquire the whole disk (the image is shorter than the PV)',
  'segment-past-image-end': 'acquire the whole disk: the LV is cut off in this image',
  'extent-past-pv-end': 'the metadata is inconsistent with the PV size: compare with /etc/lvm/backup/<vg>',
  'partition-table': 'none needed if the PV was found',
  'no-pv-in-image': 'pass the disk (or partition) that holds the LVM physical volume',
};

export function problemToFinding(p: LvmProblem): LvmFinding {
  return { ...p, remedy: REMEDY[p.kind] ?? '' };
}

function location(svg: ScannedVg, lv: string): LvLocation {
  const l: LocatedLv = locateLv(svg, lv);
  const first = l.extents[0];
  if (!first) throw new DmiError('BAD_INPUT', `LV ${svg.vg.name}/${lv} is empty`);
  return {
    vg: l.vg, lv: l.lv, path: first.path, length: l.length,
    extents: l.extents.map((e) => ({ path: e.path, offset: e.offset, length: e.length })),
    label: `${first.path}: ${l.vg}/${l.lv}`,
  };
}

/** Describes thin-pool LV `lvName` of `svg`; LVs that cannot be mapped are null, with a finding in `findings`. */
export function describeThinPool(svg: ScannedVg, lvName: string, findings: LvmFinding[] = []): LvmThinPool {
  const vg = svg.vg;
  const lv = vg.lvs.find((l) => l.name === lvName);
  if (!lv) throw new DmiError('NOT_FOUND', `volume group ${vg.name} has no logical volume "${lvName}"`);
  const seg = lv.segments[0];
  if (!seg || seg.type !== 'thin-pool') throw new DmiError('BAD_INPUT', `LV ${vg.name}/${lvName} is not a thin pool (segment type ${seg?.type ?? 'none'})`);
  if (lv.segments.length !== 1) throw new DmiError('BAD_INPUT', `thin pool ${vg.name}/${lvName} has ${lv.segments.length} segments (LVM writes one)`);
  const thinVolumes: ThinVolume[] = vg.lvs
    .filter((l) => l.segments[0]?.type === 'thin' && l.segments[0].thinPool === lvName)
    .map((l) => ({
      name: l.name, dmName: dmName(vg.name, l.name), deviceId: l.segments[0]!.deviceId!, transactionId: l.segments[0]!.transactionId!,
      sizeBytes: lvBytes(vg, l), visible: l.visible,
    }));
  const where = (name: string): LvLocation | null => {
    try {
      return location(svg, name);
    } catch (e) {
      if (!isDmiError(e)) throw e;
      findings.push({ kind: 'pool-lv-unmappable', severity: 'critical', message: e.message, evidence: { vg: vg.name, lv: name, code: e.code }, remedy: REMEDY['segment-past-image-end']! });
      return null;
    }
  };
  return {
    vg: vg.name,
    lv: lvName,
    dmName: dmName(vg.name, lvName),
    transactionId: seg.transactionId!,
    chunkSizeSectors: seg.chunkSize!,
    chunkSizeBytes: seg.chunkSize! * SECTOR,
    zeroNewBlocks: seg.zeroNewBlocks ?? null,
    discards: seg.discards ?? null,
    sizeBytes: lvBytes(vg, lv),
    metadataLv: seg.metadata!,
    dataLv: seg.pool!,
    metadata: where(seg.metadata!),
    data: where(seg.pool!),
    thinVolumes,
  };
}

/** Every thin-pool LV in the scan, as (VG, LV name). */
export function thinPoolsOf(scan: LvmScan): { svg: ScannedVg; lv: string }[] {
  return scan.vgs.flatMap((svg) => svg.vg.lvs.filter((l) => l.segments[0]?.type === 'thin-pool').map((l) => ({ svg, lv: l.name })));
}

/**
 * Finds the thin pool: by name (dm name or vg/lv), else the only thin pool; NOT_FOUND / AMBIGUOUS
 * (listing the pools) otherwise.
 */
export function findThinPool(scan: LvmScan, opts: LvmPoolOptions = {}): { svg: ScannedVg; lv: string } {
  const pools = thinPoolsOf(scan);
  const list = pools.map((p) => `${dmName(p.svg.vg.name, p.lv)} (${p.svg.vg.name}/${p.lv})`).join(', ');
  if (opts.pool) {
    const want = splitDmName(opts.pool);
    if (!want) throw new DmiError('USAGE', `pool ${JSON.stringify(opts.pool)}: expected a dm name like docker-thinpool or vg/lv`);
    const svg = findVg(scan, want.vg);
    const lv = svg.vg.lvs.find((l) => l.name === want.lv);
    if (!lv) throw new DmiError('NOT_FOUND', `volume group ${want.vg} has no logical volume "${want.lv}" (thin pools: ${list || 'none'})`);
    if (lv.segments[0]?.type !== 'thin-pool') throw new DmiError('BAD_INPUT', `${want.vg}/${want.lv} is not a thin pool (segment type ${lv.segments[0]?.type ?? 'none'}; thin pools: ${list || 'none'})`);
    return { svg, lv: lv.name };
  }
  if (pools.length === 0) throw new DmiError('NOT_FOUND', `no thin pool in the volume groups found (${scan.vgs.map((v) => v.vg.name).join(', ') || 'none'})`);
  if (pools.length > 1) {
    throw new DmiError('AMBIGUOUS', `${pools.length} thin pools: ${list}; name one with --pool`, { candidates: pools.map((p) => dmName(p.svg.vg.name, p.lv)) });
  }
  return pools[0]!;
}

/** Scans the images and locates the pool; throws when its metadata or data LV cannot be mapped. */
export function locateLvmPool(images: string[], opts: LvmPoolOptions = {}): { scan: LvmScan; pool: LvmThinPool; findings: LvmFinding[] } {
  const scan = scanImages(images);
  const { svg, lv } = findThinPool(scan, opts);
  const findings = scan.problems.map(problemToFinding);
  const pool = describeThinPool(svg, lv);
  if (!pool.metadata) location(svg, pool.metadataLv); // throws the reason
  if (!pool.data) location(svg, pool.dataLv);
  return { scan, pool, findings };
}

/** Opens the pool's metadata LV (read-only) through its extents. */
export function openLvmPoolMetadata(pool: LvmThinPool, opts: { metadataSnap?: boolean } = {}): ThinPool {
  const m = pool.metadata;
  if (!m) throw new DmiError('BAD_INPUT', `thin pool ${pool.vg}/${pool.lv}: its metadata LV ${pool.metadataLv} is not readable in the images`);
  return openPool(m.path, { extents: m.extents, label: m.label, metadataSnap: opts.metadataSnap });
}

/** Checks LVM's view of the pool against the pool's superblock (null `thin`: only what LVM says). */
export function poolFindings(pool: LvmThinPool, thin: ThinPool | null): { superblock: PoolSuperblockFacts | null; findings: LvmFinding[] } {
  const findings: LvmFinding[] = [];
  if (!thin) return { superblock: null, findings };
  const sb = thin.liveSuperblock;
  const sm = thin.spaceMaps();
  const usedPct = sm.metadata.nrBlocks ? Math.round((sm.metadata.used / sm.metadata.nrBlocks) * 10000) / 100 : 0;
  const facts: PoolSuperblockFacts = {
    transactionId: sb.transactionId,
    dataBlockSectors: thin.dataBlockSectors,
    dataNrBlocks: thin.dataNrBlocks,
    metadataNrBlocks: thin.metadataNrBlocks,
    metadataUsedBlocks: sm.metadata.used,
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
        kind: 'transaction-id-unchecked', severity: 'info', evidence: ev,
        message: `LVM records transaction_id 0 for ${pool.vg}/${pool.lv}, the pool's superblock is at ${S}: LVM does not check a zero transaction_id, so activation is not blocked (Docker moves the pool's id itself)`,
        remedy: 'none needed',
      });
    } else if (S + 1 === T) {
      findings.push({
        kind: 'transaction-id-pending', severity: 'warning', evidence: ev,
        message: `LVM records transaction_id ${T} for ${pool.vg}/${pool.lv}, one above the pool's ${S}: an LVM thin operation was interrupted; LVM replays its pending messages at activation`,
        remedy: 'activate with LVM (lvchange -ay) before changing the pool with other tools',
      });
    } else {
      findings.push({
        kind: 'transaction-id-mismatch', severity: 'critical', evidence: ev,
        message: `Thin pool ${node} transaction_id is ${S}, while expected ${T}: LVM will refuse to activate ${pool.vg}/${pool.lv} (Docker cannot start its pool)`,
        remedy: `vgcfgbackup -f vg.txt ${pool.vg}; set transaction_id = ${S} in the ${pool.lv} segment; vgcfgrestore --force -f vg.txt ${pool.vg} (on the host, pool inactive; keep a copy first)`,
      });
    }
  }
  if (usedPct >= METADATA_WARN_PERCENT) {
    findings.push({
      kind: 'metadata-nearly-full', severity: usedPct >= METADATA_CRITICAL_PERCENT ? 'critical' : 'warning',
      evidence: { vg: pool.vg, lv: pool.metadataLv, used: sm.metadata.used, total: sm.metadata.nrBlocks, percent: usedPct },
      message: `pool metadata LV ${pool.vg}/${pool.metadataLv} is ${usedPct}% full (${sm.metadata.used} of ${sm.metadata.nrBlocks} 4 KiB blocks): a full metadata device turns the pool read-only`,
      remedy: `lvextend --poolmetadatasize +<size> ${pool.vg}/${pool.lv} (on the host; or let LVM autoextend: thin_pool_autoextend_threshold in the docker-thinpool profile)`,
    });
  }
  if (thin.dataBlockSectors !== pool.chunkSizeSectors) {
    findings.push({
      kind: 'chunk-size-differs', severity: 'warning', evidence: { lvm: pool.chunkSizeSectors, superblock: thin.dataBlockSectors },
      message: `LVM records chunk_size ${pool.chunkSizeSectors} sectors for ${pool.vg}/${pool.lv}, the pool's superblock says ${thin.dataBlockSectors}: the metadata LV may belong to another pool`,
      remedy: 'check that the metadata and data LVs belong together',
    });
  }
  if (pool.data && thin.dataNrBlocks * thin.dataBlockBytes > pool.data.length) {
    findings.push({
      kind: 'chunk-size-differs', severity: 'warning', evidence: { dataNrBlocks: thin.dataNrBlocks, dataLvBytes: pool.data.length },
      message: `the pool's superblock counts ${thin.dataNrBlocks} data blocks of ${thin.dataBlockBytes} bytes, more than the data LV ${pool.vg}/${pool.dataLv} holds (${pool.data.length} bytes)`,
      remedy: 'check that the metadata and data LVs belong together',
    });
  }
  return { superblock: facts, findings };
}

/** Describes a pool and, when its metadata LV is readable, checks it against the superblock. */
export function checkLvmPool(svg: ScannedVg, lv: string): LvmPoolCheck {
  const findings: LvmFinding[] = [];
  const pool = describeThinPool(svg, lv, findings);
  let thin: ThinPool | null = null;
  if (pool.metadata) {
    try {
      thin = openLvmPoolMetadata(pool);
    } catch (e) {
      if (!isDmiError(e)) throw e;
      findings.push({ kind: 'pool-metadata-unreadable', severity: 'critical', message: e.message, evidence: { vg: pool.vg, lv: pool.metadataLv, code: e.code }, remedy: 'thin_check / thin_dump on the metadata LV; check the acquisition' });
    }
  }
  try {
    const r = poolFindings(pool, thin);
    return { pool, superblock: r.superblock, findings: [...findings, ...r.findings] };
  } catch (e) {
    if (!isDmiError(e)) throw e;
    findings.push({ kind: 'pool-metadata-unreadable', severity: 'critical', message: e.message, evidence: { vg: pool.vg, lv: pool.metadataLv, code: e.code }, remedy: 'thin_check / thin_dump on the metadata LV; check the acquisition' });
    return { pool, superblock: null, findings };
  } finally {
    thin?.close();
  }
}

export interface LvmListing {
  images: { path: string; size: number; partitionTable: string | null; partitions: { number: number; start: number; size: number; type: string; name: string | null }[] }[];
  pvs: { image: string; partition: number | null; start: number; uuid: string; deviceSize: number; available: number; vg: string | null; metadataAreas: { offset: number; size: number }[] }[];
  vgs: {
    name: string; id: string; seqno: number; extentSize: number; extentBytes: number;
    source: ScannedVg['source'];
    pvs: { key: string; id: string; device: string | null; peStart: number; peCount: number; image: string | null; offset: number | null }[];
    lvs: {
      name: string; dmName: string; visible: boolean; status: string[]; sizeBytes: number; extents: number;
      segments: { key: string; startExtent: number; extentCount: number; type: string; stripes: { pv: string; extent: number; image: string | null; offset: number | null }[]; details: Record<string, unknown> }[];
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
      name: vg.name, id: vg.id, seqno: vg.seqno, extentSize: vg.extentSize, extentBytes: vg.extentSize * SECTOR, source: svg.source,
      pvs: vg.pvs.map((p) => {
        const f = found(p.key);
        return { key: p.key, id: p.id, device: p.device, peStart: p.peStart, peCount: p.peCount, image: f?.image ?? null, offset: f ? f.start + p.peStart * SECTOR : null };
      }),
      lvs: vg.lvs.map((lv) => ({
        name: lv.name, dmName: dmName(vg.name, lv.name), visible: lv.visible, status: lv.status, sizeBytes: lvBytes(vg, lv), extents: lv.extentCount,
        segments: lv.segments.map((s) => {
          const { raw, stripes, key, startExtent, extentCount, type, ...details } = s;
          void raw;
          return {
            key, startExtent, extentCount, type, details,
            stripes: (stripes ?? []).map((st) => {
              const f = found(st.pv);
              const pv = vg.pvs.find((p) => p.key === st.pv)!;
              return { pv: st.pv, extent: st.extent, image: f?.image ?? null, offset: f ? f.start + (pv.peStart + st.extent * vg.extentSize) * SECTOR : null };
            }),
          };
        }),
      })),
    };
  });
  const thinPools = thinPoolsOf(scan).map(({ svg, lv }) => checkLvmPool(svg, lv));
  return {
    images: scan.images.map((i) => ({ path: i.path, size: i.size, partitionTable: i.partitionTable, partitions: i.partitions.map(({ number, start, size, type, name }) => ({ number, start, size, type, name })) })),
    pvs: scan.pvs.map((p) => ({
      image: p.image, partition: p.partition?.number ?? null, start: p.start, uuid: p.label.uuid, deviceSize: p.label.deviceSize, available: p.available,
      vg: p.metadata?.vg.name ?? null, metadataAreas: p.label.metadataAreas,
    })),
    vgs,
    thinPools,
    findings: [...scan.problems.map(problemToFinding), ...thinPools.flatMap((t) => t.findings)],
  };
}
