/**
 * The volume-group model read from LVM2 metadata text: PVs, LVs and their segments, and how an LV's
 * logical bytes map onto PV bytes through its segments (linear / striped, across segments and PVs).
 */
import { DmiError } from '../errors.js';
import type { LvmScalar, LvmSection, LvmValue } from './text.js';

export const SECTOR = 512;

export interface PhysicalVolume {
  /** Key in the metadata (`pv0`). */
  key: string;
  /** PV uuid with dashes, as in the metadata (`HW80Qw-jYc6-…`). */
  id: string;
  /** Last device path LVM saw (a hint only). */
  device: string | null;
  status: string[];
  flags: string[];
  /** Device size in sectors, when recorded. */
  devSize: number | null;
  /** First extent, in sectors from the start of the PV. */
  peStart: number;
  peCount: number;
}

export interface StripeArea {
  /** PV key (`pv0`). */
  pv: string;
  /** First PV extent. */
  extent: number;
}

export interface Segment {
  /** `segment1`… */
  key: string;
  startExtent: number;
  extentCount: number;
  type: string;
  /** striped: stripe_count, stripe_size (sectors, when stripe_count > 1), areas. */
  stripeCount?: number;
  stripeSize?: number;
  stripes?: StripeArea[];
  /** thin-pool. */
  metadata?: string;
  pool?: string;
  transactionId?: number;
  chunkSize?: number;
  discards?: string;
  zeroNewBlocks?: boolean;
  /** thin. */
  thinPool?: string;
  deviceId?: number;
  origin?: string;
  externalOrigin?: string;
  /** Every key = value of the segment, as parsed. */
  raw: Record<string, LvmValue>;
}

export interface LogicalVolume {
  name: string;
  id: string;
  status: string[];
  flags: string[];
  visible: boolean;
  segments: Segment[];
  /** Sum of the segments' extent counts. */
  extentCount: number;
}

export interface VolumeGroup {
  name: string;
  id: string;
  seqno: number;
  status: string[];
  /** Extent size in sectors. */
  extentSize: number;
  pvs: PhysicalVolume[];
  lvs: LogicalVolume[];
  /** creation_host / creation_time / description of the text, when present. */
  creationHost: string | null;
  creationTime: number | null;
  description: string | null;
}

class Reader {
  constructor(private readonly what: string) {}

  fail(sec: LvmSection, msg: string): never {
    throw new DmiError('BAD_INPUT', `${this.what}: ${sec.name}${sec.line ? ` (line ${sec.line})` : ''}: ${msg}`);
  }

  int(sec: LvmSection, key: string, min = 0): number {
    const v = sec.values.get(key);
    if (v === undefined) this.fail(sec, `missing "${key}"`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
      this.fail(sec, `"${key}" is ${JSON.stringify(v)}, expected an integer ≥ ${min}`);
    return v;
  }

  optInt(sec: LvmSection, key: string): number | undefined {
    return sec.values.has(key) ? this.int(sec, key) : undefined;
  }

  str(sec: LvmSection, key: string): string {
    const v = sec.values.get(key);
    if (v === undefined) this.fail(sec, `missing "${key}"`);
    if (typeof v !== 'string') this.fail(sec, `"${key}" is ${JSON.stringify(v)}, expected a string`);
    return v;
  }

  optStr(sec: LvmSection, key: string): string | undefined {
    return sec.values.has(key) ? this.str(sec, key) : undefined;
  }

  strList(sec: LvmSection, key: string): string[] {
    const v = sec.values.get(key);
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
      this.fail(sec, `"${key}" is ${JSON.stringify(v)}, expected a list of strings`);
    return v as string[];
  }

  section(sec: LvmSection, key: string): LvmSection {
    const s = sec.sections.get(key);
    if (!s) this.fail(sec, `missing section "${key}"`);
    return s;
  }
}

function rawValues(sec: LvmSection): Record<string, LvmValue> {
  const out: Record<string, LvmValue> = Object.create(null) as Record<string, LvmValue>;
  for (const [k, v] of sec.values) out[k] = v;
  return { ...out };
}

function readSegment(r: Reader, sec: LvmSection): Segment {
  const seg: Segment = {
    key: sec.name,
    startExtent: r.int(sec, 'start_extent'),
    extentCount: r.int(sec, 'extent_count', 1),
    type: r.str(sec, 'type'),
    raw: rawValues(sec),
  };
  switch (seg.type) {
    case 'striped': {
      seg.stripeCount = r.int(sec, 'stripe_count', 1);
      const list = sec.values.get('stripes');
      if (!Array.isArray(list)) r.fail(sec, 'missing "stripes" list');
      if (list.length !== 2 * seg.stripeCount)
        r.fail(
          sec,
          `"stripes" has ${list.length} items, expected ${2 * seg.stripeCount} (stripe_count ${seg.stripeCount})`,
        );
      seg.stripes = [];
      for (let i = 0; i < list.length; i += 2) {
        const pv: LvmScalar = list[i]!;
        const extent: LvmScalar = list[i + 1]!;
        if (typeof pv !== 'string' || typeof extent !== 'number' || !Number.isSafeInteger(extent) || extent < 0) {
          r.fail(sec, `"stripes" item ${i / 2} is ${JSON.stringify([pv, extent])}, expected "pvN", extent`);
        }
        seg.stripes.push({ pv, extent });
      }
      if (seg.stripeCount > 1) {
        seg.stripeSize = r.int(sec, 'stripe_size', 1);
        if (seg.extentCount % seg.stripeCount !== 0)
          r.fail(sec, `extent_count ${seg.extentCount} is not a multiple of stripe_count ${seg.stripeCount}`);
      }
      break;
    }
    case 'thin-pool':
      seg.metadata = r.str(sec, 'metadata');
      seg.pool = r.str(sec, 'pool');
      seg.transactionId = r.int(sec, 'transaction_id');
      seg.chunkSize = r.int(sec, 'chunk_size', 1);
      seg.discards = r.optStr(sec, 'discards');
      // LVM omits zero_new_blocks = 0.
      seg.zeroNewBlocks = sec.values.has('zero_new_blocks') ? r.int(sec, 'zero_new_blocks') !== 0 : false;
      break;
    case 'thin':
      seg.thinPool = r.str(sec, 'thin_pool');
      seg.transactionId = r.int(sec, 'transaction_id');
      seg.deviceId = r.int(sec, 'device_id');
      seg.origin = r.optStr(sec, 'origin');
      seg.externalOrigin = r.optStr(sec, 'external_origin');
      break;
    default:
      break;
  }
  return seg;
}

/** The volume group in parsed metadata text (the one top-level section). */
export function readVolumeGroup(top: LvmSection, what = 'LVM metadata'): VolumeGroup {
  const r = new Reader(what);
  const vgs = [...top.sections.values()];
  if (vgs.length !== 1) r.fail(top, `expected one volume group section, found ${vgs.length}`);
  const vs = vgs[0]!;
  const extentSize = r.int(vs, 'extent_size', 1);
  const pvs: PhysicalVolume[] = [];
  const pvSec = vs.sections.get('physical_volumes');
  for (const ps of pvSec?.sections.values() ?? []) {
    pvs.push({
      key: ps.name,
      id: r.str(ps, 'id'),
      device: r.optStr(ps, 'device') ?? null,
      status: r.strList(ps, 'status'),
      flags: r.strList(ps, 'flags'),
      devSize: r.optInt(ps, 'dev_size') ?? null,
      peStart: r.int(ps, 'pe_start'),
      peCount: r.int(ps, 'pe_count'),
    });
  }
  const lvs: LogicalVolume[] = [];
  for (const ls of vs.sections.get('logical_volumes')?.sections.values() ?? []) {
    const segments: LogicalVolume['segments'] = [];
    for (const ss of ls.sections.values()) {
      if (/^segment\d+$/.test(ss.name)) segments.push(readSegment(r, ss));
    }
    const count = r.optInt(ls, 'segment_count');
    if (count !== undefined && count !== segments.length)
      r.fail(ls, `segment_count is ${count}, found ${segments.length} segments`);
    segments.sort((a, b) => a.startExtent - b.startExtent);
    let next = 0;
    for (const s of segments) {
      if (s.startExtent !== next)
        r.fail(ls, `${s.key} starts at extent ${s.startExtent}, expected ${next} (segments overlap or leave a gap)`);
      next += s.extentCount;
    }
    const status = r.strList(ls, 'status');
    lvs.push({
      name: ls.name,
      id: r.optStr(ls, 'id') ?? '',
      status,
      flags: r.strList(ls, 'flags'),
      visible: status.includes('VISIBLE'),
      segments,
      extentCount: next,
    });
  }
  const pvKeys = new Set(pvs.map((p) => p.key));
  for (const lv of lvs) {
    for (const s of lv.segments) {
      for (const st of s.stripes ?? []) {
        if (!pvKeys.has(st.pv))
          throw new DmiError(
            'BAD_INPUT',
            `${what}: LV ${lv.name} ${s.key} names PV "${st.pv}", which the volume group does not list`,
          );
      }
    }
  }
  const num = (k: string): number | null => {
    const v = top.values.get(k);
    return typeof v === 'number' ? v : null;
  };
  const text = (k: string): string | null => {
    const v = top.values.get(k);
    return typeof v === 'string' ? v : null;
  };
  return {
    name: vs.name,
    id: r.str(vs, 'id'),
    seqno: r.int(vs, 'seqno'),
    status: r.strList(vs, 'status'),
    extentSize,
    pvs,
    lvs,
    creationHost: text('creation_host'),
    creationTime: num('creation_time'),
    description: text('description'),
  };
}

/** A piece of an LV: logical bytes [lvOffset, lvOffset + length) are bytes [pvOffset, …) of PV `pv` (from the PV's start). */
export interface LvPiece {
  lvOffset: number;
  pv: string;
  pvOffset: number;
  length: number;
  /** The segment and the PV extent the piece starts in (for messages). */
  segment: string;
  pvExtent: number;
}

export const MAX_PIECES = 1 << 20;
const MAX_LV_DEPTH = 8;

/**
 * Where LV `name`'s bytes are: pieces in LV order, adjacent ones merged. Linear and striped segments; raid1 /
 * mirror segments are read through their first image. Other types (thin, thin-pool, cache, raid5…) throw
 * UNSUPPORTED: their bytes are not a plain copy on PVs.
 */
export function mapLogicalVolume(vg: VolumeGroup, name: string, depth = 0): LvPiece[] {
  const lv = vg.lvs.find((l) => l.name === name);
  if (!lv) throw new DmiError('NOT_FOUND', `volume group ${vg.name} has no logical volume "${name}"`);
  if (depth > MAX_LV_DEPTH)
    throw new DmiError('BAD_INPUT', `${vg.name}/${name}: logical volumes nest deeper than ${MAX_LV_DEPTH} (a cycle?)`);
  const ext = vg.extentSize * SECTOR;
  const out: LvPiece[] = [];
  const push = (p: LvPiece): void => {
    const last = out[out.length - 1];
    if (
      last &&
      last.pv === p.pv &&
      last.pvOffset + last.length === p.pvOffset &&
      last.lvOffset + last.length === p.lvOffset
    )
      last.length += p.length;
    else {
      if (out.length >= MAX_PIECES)
        throw new DmiError('BAD_INPUT', `${vg.name}/${name}: more than ${MAX_PIECES} pieces`);
      out.push(p);
    }
  };
  const pvByKey = new Map(vg.pvs.map((p) => [p.key, p]));
  for (const s of lv.segments) {
    const segStart = s.startExtent * ext;
    const segLen = s.extentCount * ext;
    if (s.type === 'striped') {
      const stripes = s.stripes!;
      const n = stripes.length;
      const areaExtents = s.extentCount / n;
      for (const st of stripes) {
        const pv = pvByKey.get(st.pv)!;
        if (st.extent + areaExtents > pv.peCount) {
          throw new DmiError(
            'BAD_INPUT',
            `${vg.name}/${name} ${s.key}: extents ${st.extent}..${st.extent + areaExtents - 1} of ${st.pv} are past the PV's end (pe_count ${pv.peCount})`,
          );
        }
      }
      const pvOff = (st: StripeArea): number => (pvByKey.get(st.pv)!.peStart + st.extent * vg.extentSize) * SECTOR;
      if (n === 1) {
        push({
          lvOffset: segStart,
          pv: stripes[0]!.pv,
          pvOffset: pvOff(stripes[0]!),
          length: segLen,
          segment: s.key,
          pvExtent: stripes[0]!.extent,
        });
      } else {
        const chunk = s.stripeSize! * SECTOR;
        const areaBytes = areaExtents * ext;
        if (areaBytes % chunk !== 0)
          throw new DmiError(
            'UNSUPPORTED',
            `${vg.name}/${name} ${s.key}: stripe size ${s.stripeSize} sectors does not divide the area`,
          );
        const rows = areaBytes / chunk;
        if (rows * n > MAX_PIECES)
          throw new DmiError('UNSUPPORTED', `${vg.name}/${name} ${s.key}: too many stripe chunks to map (${rows * n})`);
        for (let row = 0; row < rows; row++) {
          for (let i = 0; i < n; i++) {
            const st = stripes[i]!;
            push({
              lvOffset: segStart + (row * n + i) * chunk,
              pv: st.pv,
              pvOffset: pvOff(st) + row * chunk,
              length: chunk,
              segment: s.key,
              pvExtent: st.extent + Math.floor((row * chunk) / ext),
            });
          }
        }
      }
    } else if (s.type === 'raid1' || s.type === 'mirror') {
      const key = s.type === 'raid1' ? 'raids' : 'mirrors';
      const list = s.raw[key];
      const image = Array.isArray(list) ? (s.type === 'raid1' ? list[1] : list[0]) : undefined;
      const at = s.type === 'mirror' && Array.isArray(list) && typeof list[1] === 'number' ? list[1] : 0;
      if (typeof image !== 'string')
        throw new DmiError('BAD_INPUT', `${vg.name}/${name} ${s.key}: ${s.type} segment without a "${key}" image`);
      const inner = mapLogicalVolume(vg, image, depth + 1);
      const from = at * ext;
      let mapped = 0;
      for (const p of inner) {
        const lo = Math.max(p.lvOffset, from);
        const hi = Math.min(p.lvOffset + p.length, from + segLen);
        if (lo < hi) {
          push({ ...p, lvOffset: segStart + lo - from, pvOffset: p.pvOffset + lo - p.lvOffset, length: hi - lo });
          mapped += hi - lo;
        }
      }
      if (mapped !== segLen)
        throw new DmiError('BAD_INPUT', `${vg.name}/${name} ${s.key}: image ${image} is shorter than the segment`);
    } else {
      throw new DmiError(
        'UNSUPPORTED',
        `${vg.name}/${name} ${s.key}: a "${s.type}" segment is not a plain copy of PV extents; cannot map its bytes`,
      );
    }
  }
  return out;
}

/** An LV's size in bytes. */
export function lvBytes(vg: VolumeGroup, lv: LogicalVolume): number {
  return lv.extentCount * vg.extentSize * SECTOR;
}

/** The dm name of vg/lv: hyphens inside each name doubled, joined with one hyphen (`docker-thinpool`). */
export function dmName(vg: string, lv: string): string {
  return `${vg.replace(/-/g, '--')}-${lv.replace(/-/g, '--')}`;
}

/**
 * Splits a dm name back into (vg, lv, layer): names are joined by single hyphens, hyphens inside them are
 * doubled (`my--vg-pool-tpool` = VG `my-vg`, LV `pool`, layer `tpool`). Also accepts `vg/lv` and
 * `/dev/vg/lv`. Null if it is neither.
 */
export function splitDmName(name: string): { vg: string; lv: string; layer: string | null } | null {
  const slash = /^(?:\/dev\/)?([^/]+)\/([^/]+)$/.exec(name);
  if (slash && !name.startsWith('/dev/mapper/')) return { vg: slash[1]!, lv: slash[2]!, layer: null };
  const n = name.replace(/^\/dev\/mapper\//, '');
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < n.length; i++) {
    if (n[i] === '-') {
      if (n[i + 1] === '-') {
        cur += '-';
        i++;
        continue;
      }
      parts.push(cur);
      cur = '';
    } else cur += n[i];
  }
  parts.push(cur);
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) return null;
  return { vg: parts[0]!, lv: parts[1]!, layer: parts[2] ?? null };
}
