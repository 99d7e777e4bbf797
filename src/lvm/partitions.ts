/**
 * Partition tables of a disk image: MBR (with extended / logical partitions) and GPT (512- or 4096-byte
 * sectors; header and entry-array CRC-32 checked). Enough to find the partition that holds an LVM PV.
 */
import { crc32 } from '../util/crc32c.js';
import { DmiError } from '../errors.js';

export interface Partition {
  /** 1-based number as Linux names it (sda1; logical MBR partitions from 5). */
  number: number;
  scheme: 'mbr' | 'gpt';
  /** Byte offset and size in the image. */
  start: number;
  size: number;
  /** MBR type byte (`0x8e`) or GPT type GUID. */
  type: string;
  /** GPT partition name. */
  name: string | null;
}

export interface PartitionTable {
  scheme: 'mbr' | 'gpt' | null;
  partitions: Partition[];
  /** Problems with the table that did not stop the scan. */
  problems: string[];
}

export const LVM_MBR_TYPE = '0x8e';
export const LVM_GPT_TYPE = 'e6d6d379-f507-44c2-a23c-238f2a3df928';
const EXTENDED = new Set([0x05, 0x0f, 0x85]);
const MAX_LOGICAL = 128;
const MAX_GPT_ENTRIES = 1024;

export type ReadAt = (offset: number, len: number, what: string) => Buffer;

function guid(b: Buffer, off: number): string {
  const h = (s: number, e: number, le: boolean): string => {
    const x = Buffer.from(b.subarray(off + s, off + e));
    if (le) x.reverse();
    return x.toString('hex');
  };
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`;
}

function readGpt(read: ReadAt, imageSize: number, what: string, sectorSize: number): PartitionTable | null {
  if (imageSize < sectorSize * 2) return null;
  const hdr = read(sectorSize, sectorSize, 'GPT header');
  if (hdr.subarray(0, 8).toString('latin1') !== 'EFI PART') return null;
  const problems: string[] = [];
  const hsize = hdr.readUInt32LE(12);
  if (hsize < 92 || hsize > sectorSize) throw new DmiError('BAD_INPUT', `${what}: GPT header size ${hsize} is invalid`);
  const h = Buffer.from(hdr.subarray(0, hsize));
  const want = h.readUInt32LE(16);
  h.writeUInt32LE(0, 16);
  if (crc32(h) >>> 0 !== want)
    throw new DmiError('BAD_INPUT', `${what}: GPT header checksum mismatch: corrupt partition table`);
  const entriesLba = Number(hdr.readBigUInt64LE(72));
  const n = hdr.readUInt32LE(80);
  const esize = hdr.readUInt32LE(84);
  if (n > MAX_GPT_ENTRIES || esize < 128 || esize > 4096 || esize % 8 !== 0)
    throw new DmiError('BAD_INPUT', `${what}: GPT has ${n} entries of ${esize} bytes: invalid`);
  const arr = read(entriesLba * sectorSize, n * esize, 'GPT partition entries');
  if (crc32(arr) >>> 0 !== hdr.readUInt32LE(88))
    problems.push(`${what}: GPT partition entry array checksum mismatch (entries read anyway)`);
  const partitions: Partition[] = [];
  for (let i = 0; i < n; i++) {
    const e = arr.subarray(i * esize, (i + 1) * esize);
    if (e.subarray(0, 16).every((x) => x === 0)) continue;
    const first = Number(e.readBigUInt64LE(32));
    const last = Number(e.readBigUInt64LE(40));
    if (last < first) {
      problems.push(`${what}: GPT partition ${i + 1} ends before it starts`);
      continue;
    }
    const name = e.subarray(56, 128).toString('utf16le').replace(/\0.*$/s, '');
    partitions.push({
      number: i + 1,
      scheme: 'gpt',
      start: first * sectorSize,
      size: (last - first + 1) * sectorSize,
      type: guid(e, 0),
      name,
    });
  }
  return { scheme: 'gpt', partitions, problems };
}

/** The image's partition table (scheme null when there is none). */
export function readPartitionTable(read: ReadAt, imageSize: number, what: string): PartitionTable {
  if (imageSize < 512) return { scheme: null, partitions: [], problems: [] };
  const mbr = read(0, 512, 'MBR');
  if (mbr[510] !== 0x55 || mbr[511] !== 0xaa) return { scheme: null, partitions: [], problems: [] };
  const entries = [0, 1, 2, 3].map((i) => {
    const o = 446 + i * 16;
    return { type: mbr[o + 4]!, start: mbr.readUInt32LE(o + 8), count: mbr.readUInt32LE(o + 12) };
  });
  if (entries.some((e) => e.type === 0xee)) {
    const gpt = readGpt(read, imageSize, what, 512) ?? readGpt(read, imageSize, what, 4096);
    if (gpt) return gpt;
    return { scheme: 'mbr', partitions: [], problems: [`${what}: protective MBR but no GPT header found`] };
  }
  // A FAT/NTFS boot sector also ends in 55aa: accept only sane entries.
  if (entries.some((e) => e.type !== 0 && (e.count === 0 || e.start === 0)) || mbr[446]! & 0x7f) {
    return { scheme: null, partitions: [], problems: [] };
  }
  const partitions: Partition[] = [];
  const problems: string[] = [];
  entries.forEach((e, i) => {
    if (e.type === 0 || e.count === 0) return;
    if (EXTENDED.has(e.type)) {
      // Walk the EBR chain: each EBR's first entry is a logical partition (relative to this EBR), its second
      // points to the next EBR (relative to the extended partition's start).
      const extStart = e.start;
      let ebr = extStart;
      const seen = new Set<number>();
      for (let k = 0; k < MAX_LOGICAL; k++) {
        if (seen.has(ebr)) {
          problems.push(`${what}: extended partition chain loops`);
          break;
        }
        seen.add(ebr);
        if ((ebr + 1) * 512 > imageSize) {
          problems.push(`${what}: extended boot record at sector ${ebr} is past the end of the image`);
          break;
        }
        const b = read(ebr * 512, 512, 'extended boot record');
        if (b[510] !== 0x55 || b[511] !== 0xaa) {
          problems.push(`${what}: no extended boot record signature at sector ${ebr}`);
          break;
        }
        const t = b[446 + 4]!;
        const s = b.readUInt32LE(446 + 8);
        const c = b.readUInt32LE(446 + 12);
        if (t !== 0 && c !== 0) {
          partitions.push({
            number: 5 + k,
            scheme: 'mbr',
            start: (ebr + s) * 512,
            size: c * 512,
            type: `0x${t.toString(16).padStart(2, '0')}`,
            name: null,
          });
        }
        const nextRel = b.readUInt32LE(446 + 16 + 8);
        if (b[446 + 16 + 4] === 0 || nextRel === 0) break;
        ebr = extStart + nextRel;
      }
      return;
    }
    partitions.push({
      number: i + 1,
      scheme: 'mbr',
      start: e.start * 512,
      size: e.count * 512,
      type: `0x${e.type.toString(16).padStart(2, '0')}`,
      name: null,
    });
  });
  partitions.sort((a, b) => a.number - b.number);
  return { scheme: 'mbr', partitions, problems };
}
