/**
 * Parsers for `dmsetup` output (pure functions; the commands are run elsewhere). Formats: dmsetup(8) and the
 * kernel's thin-provisioning.rst "Status" sections.
 */
import { DmiError } from '../errors.js';

export interface DmDevice {
  name: string;
  major: number;
  minor: number;
}

/** `dmsetup ls [--target T]`: "name\t(254:0)" or "name\t(254, 0)" lines; "No devices found" → []. */
export function parseLs(text: string): DmDevice[] {
  const out: DmDevice[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+\((\d+)(?::|,\s*)(\d+)\)\s*$/.exec(line.trim());
    if (m) out.push({ name: m[1]!, major: Number(m[2]), minor: Number(m[3]) });
  }
  return out;
}

export interface TableLine {
  /** Set when the output names the device ("name: 0 100 thin ..."), as `dmsetup table` / `status` without a name print. */
  name: string | null;
  start: number;
  length: number;
  target: string;
  args: string[];
}

/** `dmsetup table [NAME]` or `dmsetup status [NAME]`: one segment per line. */
export function parseTable(text: string): TableLine[] {
  const out: TableLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line === 'No devices found') continue;
    const m = /^(?:(\S+):\s+)?(\d+)\s+(\d+)\s+(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) throw new DmiError('BAD_INPUT', `dmsetup: cannot parse table line ${JSON.stringify(line.slice(0, 120))}`);
    out.push({
      name: m[1] ?? null,
      start: Number(m[2]),
      length: Number(m[3]),
      target: m[4]!,
      args: m[5] ? m[5].split(/\s+/) : [],
    });
  }
  return out;
}

export type PoolMode = 'rw' | 'ro' | 'out_of_data_space' | 'fail';

export interface ThinPoolStatus {
  fail: boolean;
  transactionId: number;
  usedMetadataBlocks: number;
  totalMetadataBlocks: number;
  usedDataBlocks: number;
  totalDataBlocks: number;
  /** Block of the held metadata snapshot root, or null ("-"). */
  heldMetadataRoot: number | null;
  mode: PoolMode;
  discardPassdown: boolean | null;
  /** true: error_if_no_space; false: queue_if_no_space. */
  errorIfNoSpace: boolean | null;
  needsCheck: boolean;
  metadataLowWatermark: number | null;
}

/**
 * thin-pool status params: `<transaction id> <used meta>/<total meta> <used data>/<total data> <held root|->
 * ro|rw|out_of_data_space [no_]discard_passdown [error|queue]_if_no_space needs_check|- <metadata low watermark>`,
 * or `Fail`.
 */
export function parseThinPoolStatus(params: string[]): ThinPoolStatus {
  if (params[0] === 'Fail') {
    return {
      fail: true,
      transactionId: 0,
      usedMetadataBlocks: 0,
      totalMetadataBlocks: 0,
      usedDataBlocks: 0,
      totalDataBlocks: 0,
      heldMetadataRoot: null,
      mode: 'fail',
      discardPassdown: null,
      errorIfNoSpace: null,
      needsCheck: false,
      metadataLowWatermark: null,
    };
  }
  const bad = () =>
    new DmiError(
      'BAD_INPUT',
      `dmsetup: cannot parse thin-pool status ${JSON.stringify(params.join(' ').slice(0, 160))}`,
    );
  const ratio = (s: string | undefined) => {
    const m = /^(\d+)\/(\d+)$/.exec(s ?? '');
    if (!m) throw bad();
    return [Number(m[1]), Number(m[2])] as const;
  };
  if (params.length < 4 || !/^\d+$/.test(params[0] ?? '')) throw bad();
  const [um, tm] = ratio(params[1]);
  const [ud, td] = ratio(params[2]);
  const held = params[3] === '-' || params[3] === undefined ? null : Number(params[3]);
  const rest = params.slice(4);
  const mode: PoolMode = rest.includes('out_of_data_space') ? 'out_of_data_space' : rest.includes('ro') ? 'ro' : 'rw';
  const wm = rest.find((p, i) => i === rest.length - 1 && /^\d+$/.test(p));
  return {
    fail: false,
    transactionId: Number(params[0]),
    usedMetadataBlocks: um,
    totalMetadataBlocks: tm,
    usedDataBlocks: ud,
    totalDataBlocks: td,
    heldMetadataRoot: held,
    mode,
    discardPassdown: rest.includes('discard_passdown') ? true : rest.includes('no_discard_passdown') ? false : null,
    errorIfNoSpace: rest.includes('error_if_no_space') ? true : rest.includes('queue_if_no_space') ? false : null,
    needsCheck: rest.includes('needs_check'),
    metadataLowWatermark: wm === undefined ? null : Number(wm),
  };
}

export interface ThinStatus {
  fail: boolean;
  mappedSectors: number;
  /** Highest mapped sector, or null when nothing is mapped. */
  highestMappedSector: number | null;
}

/** thin status params: `<nr mapped sectors> <highest mapped sector>` (`-` when none), or `Fail`. */
export function parseThinStatus(params: string[]): ThinStatus {
  if (params[0] === 'Fail') return { fail: true, mappedSectors: 0, highestMappedSector: null };
  if (!/^\d+$/.test(params[0] ?? ''))
    throw new DmiError('BAD_INPUT', `dmsetup: cannot parse thin status ${JSON.stringify(params.join(' '))}`);
  return {
    fail: false,
    mappedSectors: Number(params[0]),
    highestMappedSector: params[1] === undefined || params[1] === '-' ? null : Number(params[1]),
  };
}

export interface ThinPoolTable {
  metadataDev: string;
  dataDev: string;
  blockSectors: number;
  lowWaterMark: number;
  features: string[];
}

/** thin-pool table args: `<metadata dev> <data dev> <block size> <low water mark> <#features> <feature>...`. */
export function parseThinPoolTable(args: string[]): ThinPoolTable {
  const n = Number(args[4] ?? 0);
  if (args.length < 4 || !/^\d+$/.test(args[2] ?? ''))
    throw new DmiError('BAD_INPUT', `dmsetup: cannot parse thin-pool table ${JSON.stringify(args.join(' '))}`);
  return {
    metadataDev: args[0]!,
    dataDev: args[1]!,
    blockSectors: Number(args[2]),
    lowWaterMark: Number(args[3]),
    features: args.slice(5, 5 + n),
  };
}

/** thin table args: `<pool dev> <dev id> [<external origin dev>]`. */
export function parseThinTable(args: string[]): { poolDev: string; deviceId: number; externalOrigin: string | null } {
  if (args.length < 2 || !/^\d+$/.test(args[1] ?? ''))
    throw new DmiError('BAD_INPUT', `dmsetup: cannot parse thin table ${JSON.stringify(args.join(' '))}`);
  return { poolDev: args[0]!, deviceId: Number(args[1]), externalOrigin: args[2] ?? null };
}

export interface DmInfo {
  name: string;
  state: 'ACTIVE' | 'SUSPENDED' | string;
  readOnly: boolean;
  tablesPresent: string;
  openCount: number;
  major: number;
  minor: number;
  targets: number;
  uuid: string | null;
}

/** `dmsetup info NAME` (the default, non-columns output). */
export function parseInfo(text: string): DmInfo {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) kv.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const name = kv.get('Name');
  if (!name) throw new DmiError('BAD_INPUT', `dmsetup: cannot parse info output ${JSON.stringify(text.slice(0, 120))}`);
  const state = kv.get('State') ?? '';
  const mm = /^(\d+),\s*(\d+)$/.exec(kv.get('Major, minor') ?? '');
  return {
    name,
    state: state.split(/\s+/)[0] ?? '',
    readOnly: /READ-ONLY/.test(state),
    tablesPresent: kv.get('Tables present') ?? '',
    openCount: Number(kv.get('Open count') ?? 0),
    major: mm ? Number(mm[1]) : -1,
    minor: mm ? Number(mm[2]) : -1,
    targets: Number(kv.get('Number of targets') ?? 0),
    uuid: kv.get('UUID') || null,
  };
}
