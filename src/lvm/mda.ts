/**
 * A metadata area (lib/format_text/layout.h, format-text.c): a 512-byte `mda_header` (checksum, magic,
 * version, start, size, raw_locns), then a circular buffer of metadata text copies. raw_locn 0 is the
 * committed copy; its text may wrap from the end of the area back to just after the header.
 */
import { LeCursor } from '../io/cursor.js';
import { DmiError } from '../errors.js';
import { calcCrc, INITIAL_CRC } from './crc.js';

export const MDA_HEADER_SIZE = 512;
export const FMTT_MAGIC = ' LVM2 x[5A%r0N*>';
export const RAW_LOCN_IGNORED = 1;
const MAX_LOCNS = Math.floor((MDA_HEADER_SIZE - 40) / 24);

export interface RawLocn {
  /** Byte offset of the text from the start of the area. */
  offset: number;
  size: number;
  checksum: number;
  flags: number;
}

export interface MdaHeader {
  checksum: number;
  version: number;
  /** Absolute byte offset of the area on the PV. */
  start: number;
  /** Area size in bytes, header included. */
  size: number;
  rawLocns: RawLocn[];
}

/** Decodes and checks an mda_header (512 bytes) found at PV byte `at`. BAD_INPUT naming `what` when corrupt. */
export function decodeMdaHeader(b: Buffer, at: number, what: string): MdaHeader {
  // struct mda_header, in field order: checksum_xl, magic, version, start, size, raw_locns[].
  const c = new LeCursor(b.subarray(0, MDA_HEADER_SIZE), what);
  const checksum = c.u32('checksum_xl');
  const magic = c.bytes(16, 'magic').toString('latin1');
  const calc = calcCrc(INITIAL_CRC, b.subarray(4, MDA_HEADER_SIZE));
  if (magic !== FMTT_MAGIC)
    throw new DmiError('BAD_INPUT', `${what}: bad magic ${JSON.stringify(magic)}: corrupt metadata area header`);
  if (checksum !== calc) {
    throw new DmiError(
      'BAD_INPUT',
      `${what}: checksum mismatch (header says 0x${checksum.toString(16).padStart(8, '0')}, computed 0x${calc.toString(16).padStart(8, '0')}): corrupt metadata area header`,
    );
  }
  const version = c.u32('version');
  if (version !== 1) throw new DmiError('UNSUPPORTED', `${what}: metadata area version ${version} (expected 1)`);
  const start = c.u64Safe('start');
  const size = c.u64Safe('size');
  if (start !== at)
    throw new DmiError('BAD_INPUT', `${what}: the header says it starts at byte ${start}, it is at ${at}`);
  if (size <= MDA_HEADER_SIZE) throw new DmiError('BAD_INPUT', `${what}: area size ${size} is too small`);
  const rawLocns: RawLocn[] = [];
  for (let i = 0; i < MAX_LOCNS; i++) {
    const offset = c.u64Safe('raw_locn offset');
    const sz = c.u64Safe('raw_locn size');
    const locnChecksum = c.u32('raw_locn checksum');
    const flags = c.u32('raw_locn flags');
    if (offset === 0 && sz === 0) break;
    rawLocns.push({ offset, size: sz, checksum: locnChecksum, flags });
  }
  return { checksum, version, start, size, rawLocns };
}

/** The byte ranges (offsets from the area start) holding `len` bytes of text at `offset`, wrapping after the header. */
export function circularRanges(mdaSize: number, offset: number, len: number, what: string): [number, number][] {
  if (offset < MDA_HEADER_SIZE || offset >= mdaSize)
    throw new DmiError(
      'BAD_INPUT',
      `${what}: text offset ${offset} is outside the area (${MDA_HEADER_SIZE}..${mdaSize})`,
    );
  if (len > mdaSize - MDA_HEADER_SIZE)
    throw new DmiError(
      'BAD_INPUT',
      `${what}: text size ${len} is larger than the area (${mdaSize - MDA_HEADER_SIZE} bytes after the header)`,
    );
  if (offset + len <= mdaSize) return [[offset, len]];
  const first = mdaSize - offset;
  return [
    [offset, first],
    [MDA_HEADER_SIZE, len - first],
  ];
}

/** Text of a copy, from the area's bytes; and whether LVM's checksum over it matches. */
export function textOfCopy(area: Buffer, locn: RawLocn, what: string): { text: Buffer; checksumOk: boolean } {
  const parts = circularRanges(area.length, locn.offset, locn.size, what).map(([o, n]) => area.subarray(o, o + n));
  let crc = INITIAL_CRC;
  for (const p of parts) crc = calcCrc(crc, p);
  return { text: Buffer.concat(parts), checksumOk: crc === locn.checksum };
}

export interface OlderCopy {
  /** Offset from the area start. */
  offset: number;
  text: Buffer;
}

/**
 * Candidate older copies of the text in the circular buffer: LVM starts each copy on a 512-byte boundary
 * with `<vgname> {` and ends it with a NUL. Returned in buffer order; the caller parses them (no checksum
 * survives for an older copy). `skip` excludes the committed copy's offset.
 */
export function olderCopies(area: Buffer, skip: Set<number>): OlderCopy[] {
  const out: OlderCopy[] = [];
  const size = area.length;
  const start = /^[A-Za-z0-9+_.-]+ \{\n/;
  for (let off = MDA_HEADER_SIZE; off < size; off += 512) {
    if (skip.has(off)) continue;
    const head = area.subarray(off, Math.min(size, off + 160)).toString('latin1');
    if (!start.test(head)) continue;
    // Read to the NUL, wrapping once after the header.
    let end = area.indexOf(0, off);
    let text: Buffer;
    if (end >= 0) text = area.subarray(off, end);
    else {
      end = area.indexOf(0, MDA_HEADER_SIZE);
      if (end < 0 || end >= off) continue;
      text = Buffer.concat([area.subarray(off), area.subarray(MDA_HEADER_SIZE, end)]);
    }
    out.push({ offset: off, text });
  }
  return out;
}
