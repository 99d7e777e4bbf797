/**
 * Direct-lvm hosts, offline: find Docker's thin pool inside LVM on raw disk images and say where its metadata
 * (`<pool>_tmeta`) and data (`<pool>_tdata`) LVs are as byte extents of the images — what `openPool` and an
 * exporter need. LVM's view checked against the pool's superblock is the audit's (audit/lvm.ts).
 */
import { DmiError, isDmiError } from '../errors.js';
import type { Finding } from '../finding.js';
import {
  dmName,
  findVg,
  locateLv,
  lvBytes,
  scanImages,
  SECTOR,
  splitDmName,
  type LocatedLv,
  type LvmProblem,
  type LvmProblemKind,
  type LvmScan,
  type ScannedVg,
} from '../lvm/index.js';
import type { Extent } from '../io/extents.js';
import { openPool, type ThinPool } from '../thin/index.js';

/** What locating a pool in disk images can find wrong: the scan's problems, and an LV that cannot be mapped. */
export type LvmLocateKind = LvmProblemKind | 'pool-lv-unmappable';

export type LvmLocateFinding = Finding<LvmLocateKind>;

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

export interface LvmPoolOptions {
  /** The pool: a dm name (`docker-thinpool`, `/dev/mapper/docker-thinpool`) or `vg/lv`. Default: the only thin pool. */
  pool?: string | null;
}

const REMEDY: Partial<Record<LvmLocateKind, string>> = {
  'metadata-checksum':
    'the disk may be damaged or was captured mid-write: check the acquisition; compare with /etc/lvm/backup/<vg> from the host',
  'metadata-unparsable': 'compare with /etc/lvm/backup/<vg> from the host',
  'metadata-area-unreadable':
    'check the acquisition; another metadata copy (another PV or area) is used when there is one',
  'older-metadata':
    'prefer /etc/lvm/backup/<vg> from the host if it is newer; LVs created or extended after this copy are not shown',
  'metadata-seqno-differs': 'an interrupted LVM command or images taken at different times: acquire all PVs at once',
  'missing-pv': 'add the disk that holds that PV with another --image',
  'duplicate-pv': 'pass each disk once (a clone of a disk has the same PV uuid)',
  'image-truncated': 'acquire the whole disk (the image is shorter than the PV)',
  'segment-past-image-end': 'acquire the whole disk: the LV is cut off in this image',
  'extent-past-pv-end': 'the metadata is inconsistent with the PV size: compare with /etc/lvm/backup/<vg>',
  'partition-table': 'none needed if the PV was found',
  'no-pv-in-image': 'pass the disk (or partition) that holds the LVM physical volume',
};

export function problemToFinding(p: LvmProblem): LvmLocateFinding {
  return { ...p, remedy: REMEDY[p.kind] ?? '' };
}

function location(svg: ScannedVg, lv: string): LvLocation {
  const l: LocatedLv = locateLv(svg, lv);
  const first = l.extents[0];
  if (!first) throw new DmiError('BAD_INPUT', `LV ${svg.vg.name}/${lv} is empty`);
  return {
    vg: l.vg,
    lv: l.lv,
    path: first.path,
    length: l.length,
    extents: l.extents.map((e) => ({ path: e.path, offset: e.offset, length: e.length })),
    label: `${first.path}: ${l.vg}/${l.lv}`,
  };
}

/** Describes thin-pool LV `lvName` of `svg`; LVs that cannot be mapped are null, with a finding in `findings`. */
export function describeThinPool(svg: ScannedVg, lvName: string, findings: LvmLocateFinding[] = []): LvmThinPool {
  const vg = svg.vg;
  const lv = vg.lvs.find((l) => l.name === lvName);
  if (!lv) throw new DmiError('NOT_FOUND', `volume group ${vg.name} has no logical volume "${lvName}"`);
  const seg = lv.segments[0];
  if (!seg || seg.type !== 'thin-pool')
    throw new DmiError('BAD_INPUT', `LV ${vg.name}/${lvName} is not a thin pool (segment type ${seg?.type ?? 'none'})`);
  if (lv.segments.length !== 1)
    throw new DmiError(
      'BAD_INPUT',
      `thin pool ${vg.name}/${lvName} has ${lv.segments.length} segments (LVM writes one)`,
    );
  const thinVolumes: ThinVolume[] = vg.lvs
    .filter((l) => l.segments[0]?.type === 'thin' && l.segments[0].thinPool === lvName)
    .map((l) => ({
      name: l.name,
      dmName: dmName(vg.name, l.name),
      deviceId: l.segments[0]!.deviceId!,
      transactionId: l.segments[0]!.transactionId!,
      sizeBytes: lvBytes(vg, l),
      visible: l.visible,
    }));
  const where = (name: string): LvLocation | null => {
    try {
      return location(svg, name);
    } catch (e) {
      if (!isDmiError(e)) throw e;
      findings.push({
        kind: 'pool-lv-unmappable',
        severity: 'critical',
        message: e.message,
        evidence: { vg: vg.name, lv: name, code: e.code },
        remedy: REMEDY['segment-past-image-end']!,
      });
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
  return scan.vgs.flatMap((svg) =>
    svg.vg.lvs.filter((l) => l.segments[0]?.type === 'thin-pool').map((l) => ({ svg, lv: l.name })),
  );
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
    if (!want)
      throw new DmiError(
        'USAGE',
        `pool ${JSON.stringify(opts.pool)}: expected a dm name like docker-thinpool or vg/lv`,
      );
    const svg = findVg(scan, want.vg);
    const lv = svg.vg.lvs.find((l) => l.name === want.lv);
    if (!lv)
      throw new DmiError(
        'NOT_FOUND',
        `volume group ${want.vg} has no logical volume "${want.lv}" (thin pools: ${list || 'none'})`,
      );
    if (lv.segments[0]?.type !== 'thin-pool')
      throw new DmiError(
        'BAD_INPUT',
        `${want.vg}/${want.lv} is not a thin pool (segment type ${lv.segments[0]?.type ?? 'none'}; thin pools: ${list || 'none'})`,
      );
    return { svg, lv: lv.name };
  }
  if (pools.length === 0)
    throw new DmiError(
      'NOT_FOUND',
      `no thin pool in the volume groups found (${scan.vgs.map((v) => v.vg.name).join(', ') || 'none'})`,
    );
  if (pools.length > 1) {
    throw new DmiError('AMBIGUOUS', `${pools.length} thin pools: ${list}; name one with --pool`, {
      candidates: pools.map((p) => dmName(p.svg.vg.name, p.lv)),
    });
  }
  return pools[0]!;
}

/** Scans the images and locates the pool; throws when its metadata or data LV cannot be mapped. */
export function locateLvmPool(
  images: string[],
  opts: LvmPoolOptions = {},
): { scan: LvmScan; pool: LvmThinPool; findings: LvmLocateFinding[] } {
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
  if (!m)
    throw new DmiError(
      'BAD_INPUT',
      `thin pool ${pool.vg}/${pool.lv}: its metadata LV ${pool.metadataLv} is not readable in the images`,
    );
  return openPool(m.path, { extents: m.extents, label: m.label, metadataSnap: opts.metadataSnap });
}
