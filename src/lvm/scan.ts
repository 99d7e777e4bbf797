/**
 * Finds LVM in disk images, offline and read-only: the PV in each image (whole image, or an MBR / GPT
 * partition), its metadata areas, the newest usable metadata text of each volume group (falling back to an
 * older copy in the circular buffer when the committed one is corrupt, and saying so), and where each LV's
 * bytes are in which image. Several images may hold the PVs of one VG: they are matched by PV uuid.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DmiError, isDmiError } from '../errors.js';
import { ImageFile } from './image.js';
import { decodeLabel, LABEL_SCAN_SECTORS, LABEL_SECTOR, type PvLabel } from './label.js';
import { decodeMdaHeader, MDA_HEADER_SIZE, olderCopies, RAW_LOCN_IGNORED, textOfCopy } from './mda.js';
import {
  lvBytes,
  mapLogicalVolume,
  readVolumeGroup,
  SECTOR,
  type LogicalVolume,
  type VolumeGroup,
} from './metadata.js';
import { readPartitionTable, type Partition } from './partitions.js';
import { parseLvmText } from './text.js';
import type { Observation } from '../finding.js';

/** Metadata areas larger than this are not read whole (LVM's default is 1 MiB). */
export const MAX_MDA_BYTES = 256 * 1024 * 1024;

export type LvmProblemKind =
  | 'metadata-checksum'
  | 'metadata-unparsable'
  | 'metadata-area-unreadable'
  | 'older-metadata'
  | 'metadata-seqno-differs'
  | 'missing-pv'
  | 'duplicate-pv'
  | 'image-truncated'
  | 'segment-past-image-end'
  | 'extent-past-pv-end'
  | 'partition-table'
  | 'no-pv-in-image';

/** What the scan saw wrong in the images (the audit adds the remedy: audit/lvm.ts). */
export type LvmProblem = Observation<LvmProblemKind>;

export interface MetadataCopy {
  /** Byte offset of the metadata area on the PV. */
  areaStart: number;
  /** Byte offset of the text inside the area. */
  textOffset: number;
  source: 'committed' | 'older-copy';
  seqno: number;
  text: string;
  vg: VolumeGroup;
}

export interface FoundPv {
  image: string;
  /** The partition holding the PV, or null for a whole-image PV. */
  partition: Partition | null;
  /** Byte offset of the PV in the image. */
  start: number;
  /** Bytes of the PV present in the image (to the partition's end, or the image's end). */
  available: number;
  label: PvLabel;
  /** The best metadata on this PV (null: an orphan PV, or no usable copy). */
  metadata: MetadataCopy | null;
}

export interface ScannedImage {
  path: string;
  size: number;
  partitionTable: 'mbr' | 'gpt' | null;
  partitions: Partition[];
}

export interface ScannedVg {
  vg: VolumeGroup;
  /** The metadata text used. */
  text: string;
  source: { image: string; pvUuid: string; areaStart: number; kind: 'committed' | 'older-copy' };
  /** Each PV the metadata lists, with where it was found (null: in none of the images). */
  pvs: { key: string; id: string; found: FoundPv | null }[];
}

export interface LvmScan {
  images: ScannedImage[];
  pvs: FoundPv[];
  vgs: ScannedVg[];
  problems: LvmProblem[];
}

/** A byte range of an image holding LV bytes [lvOffset, lvOffset + length). */
export interface LocatedExtent {
  path: string;
  offset: number;
  length: number;
  lvOffset: number;
  pv: string;
  segment: string;
}

export interface LocatedLv {
  vg: string;
  lv: string;
  /** LV size in bytes. */
  length: number;
  extents: LocatedExtent[];
}

/** A byte count or offset for messages, grouped in thousands (decimal). */
const grouped = (n: number): string => n.toLocaleString('en-US');

function parseCopy(text: Buffer, what: string): { vg: VolumeGroup; text: string } {
  let end = text.length;
  while (end > 0 && text[end - 1] === 0) end--; // the recorded size counts the C string's NUL
  const s = text.subarray(0, end).toString('utf8');
  const vg = readVolumeGroup(parseLvmText(s, what), what);
  return { vg, text: s };
}

function readPvMetadata(img: ImageFile, pv: Omit<FoundPv, 'metadata'>, problems: LvmProblem[]): MetadataCopy | null {
  const found: MetadataCopy[] = [];
  pv.label.metadataAreas.forEach((mda, i) => {
    const what = `${img.path}: metadata area ${i + 1} of PV ${pv.label.uuid} (byte ${grouped(pv.start + mda.offset)})`;
    const ev = { image: img.path, pv: pv.label.uuid, areaStart: mda.offset };
    try {
      if (mda.offset + MDA_HEADER_SIZE > pv.available) {
        throw new DmiError(
          'BAD_INPUT',
          `${what}: past the end of the image (${grouped(pv.available)} bytes of the PV present): truncated image?`,
        );
      }
      const header = decodeMdaHeader(
        img.read(pv.start + mda.offset, MDA_HEADER_SIZE, 'metadata area header'),
        mda.offset,
        what,
      );
      if (mda.size && header.size !== mda.size)
        throw new DmiError(
          'BAD_INPUT',
          `${what}: the header says the area is ${header.size} bytes, the label says ${mda.size}`,
        );
      if (header.size > MAX_MDA_BYTES)
        throw new DmiError('UNSUPPORTED', `${what}: area of ${header.size} bytes is larger than ${MAX_MDA_BYTES}`);
      if (mda.offset + header.size > pv.available) {
        throw new DmiError(
          'BAD_INPUT',
          `${what}: the area (${grouped(header.size)} bytes) runs past the end of the image: truncated image?`,
        );
      }
      const locn = header.rawLocns[0];
      if (!locn || locn.size === 0) return; // an orphan PV: no VG text
      if (locn.flags & RAW_LOCN_IGNORED) return; // metadataignore: LVM keeps this area unused
      const area = img.read(pv.start + mda.offset, header.size, 'metadata area');
      const committed = textOfCopy(area, locn, what);
      let reason: { kind: LvmProblemKind; message: string } | null = null;
      if (committed.checksumOk) {
        try {
          const p = parseCopy(committed.text, `${what}: metadata text`);
          found.push({
            areaStart: mda.offset,
            textOffset: locn.offset,
            source: 'committed',
            seqno: p.vg.seqno,
            text: p.text,
            vg: p.vg,
          });
          return;
        } catch (e) {
          if (!isDmiError(e) || e.code !== 'BAD_INPUT') throw e;
          reason = {
            kind: 'metadata-unparsable',
            message: `the committed metadata text does not parse (${e.message.slice(what.length + 2)})`,
          };
        }
      } else {
        reason = {
          kind: 'metadata-checksum',
          message: `the committed metadata text (offset ${locn.offset}, ${locn.size} bytes) fails its checksum`,
        };
      }
      const older: MetadataCopy[] = [];
      for (const c of olderCopies(area, new Set([locn.offset]))) {
        try {
          const p = parseCopy(c.text, `${what}: older copy at offset ${c.offset}`);
          older.push({
            areaStart: mda.offset,
            textOffset: c.offset,
            source: 'older-copy',
            seqno: p.vg.seqno,
            text: p.text,
            vg: p.vg,
          });
        } catch {
          /* overwritten or torn: not a usable copy */
        }
      }
      older.sort((a, b) => b.seqno - a.seqno);
      const best = older[0];
      if (best) {
        found.push(best);
        problems.push({
          kind: reason.kind,
          severity: 'warning',
          evidence: { ...ev, olderSeqno: best.seqno, olderOffset: best.textOffset },
          message: `${what}: ${reason.message}; an older copy (seqno ${best.seqno}, offset ${best.textOffset}) is in the buffer`,
        });
      } else {
        problems.push({
          kind: reason.kind,
          severity: 'critical',
          evidence: ev,
          message: `${what}: ${reason.message}, and no older copy is in the buffer`,
        });
      }
    } catch (e) {
      if (!isDmiError(e)) throw e;
      problems.push({ kind: 'metadata-area-unreadable', severity: 'warning', evidence: ev, message: e.message });
    }
  });
  found.sort((a, b) => b.seqno - a.seqno || (a.source === 'committed' ? -1 : 1));
  return found[0] ?? null;
}

function findPvs(img: ImageFile, problems: LvmProblem[]): { pvs: FoundPv[]; image: ScannedImage } {
  const head = (start: number, avail: number): Buffer =>
    img.read(start, Math.min(LABEL_SCAN_SECTORS * LABEL_SECTOR, avail), 'PV label');
  const whole = decodeLabel(head(0, img.size), img.path);
  const image: ScannedImage = { path: img.path, size: img.size, partitionTable: null, partitions: [] };
  const places: { partition: Partition | null; start: number; available: number; label: PvLabel }[] = [];
  if (whole) places.push({ partition: null, start: 0, available: img.size, label: whole });
  else {
    const table = readPartitionTable((o, n, w) => img.read(o, n, w), img.size, img.path);
    image.partitionTable = table.scheme;
    image.partitions = table.partitions;
    for (const p of table.problems)
      problems.push({ kind: 'partition-table', severity: 'info', message: p, evidence: { image: img.path } });
    for (const part of table.partitions) {
      if (part.start >= img.size) {
        problems.push({
          kind: 'image-truncated',
          severity: 'warning',
          evidence: { image: img.path, partition: part.number },
          message: `${img.path}: partition ${part.number} starts at byte ${grouped(part.start)}, past the end of the image (${grouped(img.size)} bytes): truncated image?`,
        });
        continue;
      }
      const available = Math.min(part.size, img.size - part.start);
      const label = decodeLabel(head(part.start, available), `${img.path} partition ${part.number}`);
      if (label) places.push({ partition: part, start: part.start, available, label });
    }
  }
  const pvs: FoundPv[] = [];
  for (const pl of places) {
    const where = `${img.path}${pl.partition ? ` partition ${pl.partition.number}` : ''}`;
    if (pl.label.deviceSize > pl.available) {
      problems.push({
        kind: 'image-truncated',
        severity: 'warning',
        evidence: { image: img.path, pv: pl.label.uuid, deviceSize: pl.label.deviceSize, available: pl.available },
        message: `${where}: PV ${pl.label.uuid} is ${grouped(pl.label.deviceSize)} bytes, the image holds ${grouped(pl.available)} of them: truncated image?`,
      });
    }
    const pv = { image: img.path, ...pl };
    pvs.push({ ...pv, metadata: readPvMetadata(img, pv, problems) });
  }
  return { pvs, image };
}

/** Opens each image read-only, finds its PVs and the volume groups they hold. */
export function scanImages(paths: string[]): LvmScan {
  if (paths.length === 0) throw new DmiError('USAGE', 'no image given');
  const problems: LvmProblem[] = [];
  const images: ScannedImage[] = [];
  const pvs: FoundPv[] = [];
  const seen = new Set<string>();
  for (const p of paths) {
    let real: string;
    try {
      real = fs.realpathSync(p);
    } catch {
      real = path.resolve(p);
    }
    if (seen.has(real)) continue;
    seen.add(real);
    const img = ImageFile.open(p);
    try {
      const r = findPvs(img, problems);
      images.push(r.image);
      if (r.pvs.length === 0) {
        const parts = r.image.partitions.length;
        problems.push({
          kind: 'no-pv-in-image',
          severity: 'info',
          evidence: { image: p },
          message: `${p}: no LVM physical volume (no LABELONE label in the first ${LABEL_SCAN_SECTORS} sectors of the image${parts ? ` or of its ${parts} partition${parts > 1 ? 's' : ''}` : ''})`,
        });
      }
      for (const pv of r.pvs) {
        const dup = pvs.find((q) => q.label.uuid === pv.label.uuid);
        if (dup) {
          problems.push({
            kind: 'duplicate-pv',
            severity: 'warning',
            evidence: { pv: pv.label.uuid },
            message: `PV ${pv.label.uuid} is in ${dup.image} and again in ${pv.image}: using the first`,
          });
          continue;
        }
        pvs.push(pv);
      }
    } finally {
      img.close();
    }
  }
  if (pvs.length === 0) {
    throw new DmiError(
      'BAD_INPUT',
      problems
        .filter((p) => p.kind === 'no-pv-in-image')
        .map((p) => p.message)
        .join('; ') || `no LVM physical volume in ${paths.join(', ')}`,
    );
  }

  // One entry per VG (by id): the copy with the highest seqno.
  const byVg = new Map<string, FoundPv[]>();
  for (const pv of pvs) {
    if (!pv.metadata) continue;
    const k = pv.metadata.vg.id;
    byVg.set(k, [...(byVg.get(k) ?? []), pv]);
  }
  const withPvMeta = pvs.filter((p) => p.metadata).length;
  if (withPvMeta === 0) {
    const bad = problems.filter((p) => p.kind.startsWith('metadata'));
    if (bad.length) throw new DmiError('BAD_INPUT', bad.map((p) => p.message).join('; '));
  }
  const vgs: ScannedVg[] = [];
  for (const holders of byVg.values()) {
    holders.sort((a, b) => b.metadata!.seqno - a.metadata!.seqno || (a.metadata!.source === 'committed' ? -1 : 1));
    const best = holders[0]!;
    const m = best.metadata!;
    const vg = m.vg;
    const seqnos = [...new Set(holders.map((h) => h.metadata!.seqno))];
    if (seqnos.length > 1) {
      problems.push({
        kind: 'metadata-seqno-differs',
        severity: 'warning',
        evidence: { vg: vg.name, seqnos },
        message: `VG ${vg.name}: its PVs hold different metadata versions (seqno ${seqnos.join(', ')}); using seqno ${m.seqno}`,
      });
    }
    if (m.source === 'older-copy') {
      problems.push({
        kind: 'older-metadata',
        severity: 'warning',
        evidence: { vg: vg.name, seqno: m.seqno, image: best.image },
        message: `VG ${vg.name}: the committed metadata is unusable; showing an older copy (seqno ${m.seqno}) from ${best.image}: changes made after it are missing`,
      });
    }
    const found = vg.pvs.map((p) => ({ key: p.key, id: p.id, found: pvs.find((q) => q.label.uuid === p.id) ?? null }));
    for (const f of found) {
      if (!f.found) {
        const pv = vg.pvs.find((p) => p.key === f.key)!;
        problems.push({
          kind: 'missing-pv',
          severity: 'warning',
          evidence: { vg: vg.name, pv: f.key, id: f.id },
          message: `VG ${vg.name}: PV ${f.key} (${f.id}${pv.device ? `, last seen as ${pv.device}` : ''}) is in none of the images given`,
        });
      }
    }
    const svg: ScannedVg = {
      vg,
      text: m.text,
      source: { image: best.image, pvUuid: best.label.uuid, areaStart: m.areaStart, kind: m.source },
      pvs: found,
    };
    vgs.push(svg);
    for (const lv of vg.lvs) problems.push(...segmentProblems(svg, lv));
  }
  vgs.sort((a, b) => a.vg.name.localeCompare(b.vg.name));
  return { images, pvs, vgs, problems };
}

/** Segments whose PV extents are past the PV's pe_count or past the end of the image that holds the PV. */
function segmentProblems(svg: ScannedVg, lv: LogicalVolume): LvmProblem[] {
  const out: LvmProblem[] = [];
  const vg = svg.vg;
  const ext = vg.extentSize * SECTOR;
  for (const s of lv.segments) {
    if (s.type !== 'striped') continue;
    const area = s.extentCount / s.stripes!.length;
    for (const st of s.stripes!) {
      const pv = vg.pvs.find((p) => p.key === st.pv)!;
      const ev = { vg: vg.name, lv: lv.name, segment: s.key, pv: st.pv, firstExtent: st.extent, extents: area };
      if (st.extent + area > pv.peCount) {
        out.push({
          kind: 'extent-past-pv-end',
          severity: 'critical',
          evidence: { ...ev, peCount: pv.peCount },
          message: `LV ${vg.name}/${lv.name} ${s.key}: extents ${st.extent}..${st.extent + area - 1} of ${st.pv} are past the PV's end (pe_count ${pv.peCount})`,
        });
        continue;
      }
      const found = svg.pvs.find((p) => p.key === st.pv)?.found;
      if (!found) continue;
      const end = pv.peStart * SECTOR + (st.extent + area) * ext;
      if (end > found.available) {
        out.push({
          kind: 'segment-past-image-end',
          severity: 'critical',
          evidence: {
            ...ev,
            image: found.image,
            endByte: found.start + end,
            imageBytes: found.start + found.available,
          },
          message: `LV ${vg.name}/${lv.name} ${s.key}: extents ${st.extent}..${st.extent + area - 1} of ${st.pv} end at byte ${grouped(found.start + end)} of ${found.image}, past its end (${grouped(found.start + found.available)} bytes): truncated acquisition`,
        });
      }
    }
  }
  return out;
}

/** Finds a VG by name (NOT_FOUND listing the VGs when absent). */
export function findVg(scan: LvmScan, name: string): ScannedVg {
  const v = scan.vgs.find((x) => x.vg.name === name);
  if (!v)
    throw new DmiError(
      'NOT_FOUND',
      `no volume group "${name}" in the images (found: ${scan.vgs.map((x) => x.vg.name).join(', ') || 'none'})`,
    );
  return v;
}

/**
 * Where LV `lv` of `svg` is, as byte ranges of the images, in LV order. NOT_FOUND when a PV it uses is in
 * none of the images; BAD_INPUT when its extents are past the PV's end or past the end of the image.
 */
export function locateLv(svg: ScannedVg, lvName: string): LocatedLv {
  const vg = svg.vg;
  const lv = vg.lvs.find((l) => l.name === lvName);
  if (!lv) throw new DmiError('NOT_FOUND', `volume group ${vg.name} has no logical volume "${lvName}"`);
  const pieces = mapLogicalVolume(vg, lvName);
  const extents: LocatedExtent[] = [];
  for (const p of pieces) {
    const f = svg.pvs.find((x) => x.key === p.pv);
    if (!f?.found) {
      throw new DmiError(
        'NOT_FOUND',
        `LV ${vg.name}/${lvName} ${p.segment} is on PV ${p.pv} (${f?.id ?? '?'}), which none of the images holds: add that disk with another --image`,
      );
    }
    const pv = f.found;
    if (p.pvOffset + p.length > pv.available) {
      throw new DmiError(
        'BAD_INPUT',
        `LV ${vg.name}/${lvName} ${p.segment}: PV ${p.pv} extent ${p.pvExtent} onwards ends at byte ${grouped(pv.start + p.pvOffset + p.length)} of ${pv.image}, past its end (${grouped(pv.start + pv.available)} bytes): truncated acquisition`,
      );
    }
    extents.push({
      path: pv.image,
      offset: pv.start + p.pvOffset,
      length: p.length,
      lvOffset: p.lvOffset,
      pv: p.pv,
      segment: p.segment,
    });
  }
  return { vg: vg.name, lv: lvName, length: lvBytes(vg, lv), extents };
}
