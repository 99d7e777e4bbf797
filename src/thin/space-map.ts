/**
 * Space maps: the data space map (a btree of index entries → bitmap blocks) and the metadata space
 * map (one index block of up to 255 entries → bitmap blocks). Bitmaps hold 2-bit reference counts,
 * 16320 per block; 3 means "≥ 3, see the ref-count btree" (u32 values).
 * Facts: kernel dm-space-map-common.{c,h}; thin-provisioning-tools space_map/common.rs.
 */
import { DmiError } from '../errors.js';
import { LeCursor } from '../io/cursor.js';

export const ENTRIES_PER_BITMAP = 16320;
export const BITMAP_HEADER_SIZE = 16;
export const MAX_METADATA_BITMAPS = 255;
export const INDEX_ENTRY_SIZE = 16;

export interface SmRoot {
  nrBlocks: number;
  nrAllocated: number;
  /** Data sm: root of the index btree. Metadata sm: the index block. */
  bitmapRoot: number;
  /** Root of the overflow ref-count btree (counts ≥ 3). */
  refCountRoot: number;
}

export function decodeSmRoot(buf: Buffer, off: number, where: string, field: string): SmRoot {
  // struct disk_sm_root, in field order.
  const c = new LeCursor(buf, where, off);
  const nrBlocks = c.u64Safe(`${field} nr_blocks`);
  const nrAllocated = c.u64Safe(`${field} nr_allocated`);
  const bitmapRoot = c.u64Safe(`${field} bitmap_root`);
  const refCountRoot = c.u64Safe(`${field} ref_count_root`);
  return { nrBlocks, nrAllocated, bitmapRoot, refCountRoot };
}

export interface IndexEntry {
  /** Block holding the bitmap. */
  blockNr: number;
  nrFree: number;
  noneFreeBefore: number;
}

export function decodeIndexEntry(buf: Buffer, off: number, where: string): IndexEntry {
  // struct disk_index_entry, in field order.
  const c = new LeCursor(buf, where, off);
  const blockNr = c.u64Safe('index entry blocknr');
  const nrFree = c.u32('nr_free');
  const noneFreeBefore = c.u32('none_free_before');
  return { blockNr, nrFree, noneFreeBefore };
}

/** Bitmaps needed for `nrBlocks` entries. */
export function nrBitmaps(nrBlocks: number): number {
  return Math.ceil(nrBlocks / ENTRIES_PER_BITMAP);
}

/**
 * The metadata space map's index block (checksum already verified with the index salt): the first
 * `count` index entries. Throws if `count` exceeds the 255 the block can hold.
 */
export function decodeMetadataIndex(buf: Buffer, blockNr: number, count: number): IndexEntry[] {
  const where = `space-map index ${blockNr}`;
  if (count > MAX_METADATA_BITMAPS) {
    throw new DmiError('BAD_INPUT', `${where}: ${count} bitmaps needed, an index block holds ${MAX_METADATA_BITMAPS}`, {
      block: blockNr,
    });
  }
  const out: IndexEntry[] = [];
  for (let i = 0; i < count; i++) out.push(decodeIndexEntry(buf, 16 + i * INDEX_ENTRY_SIZE, where));
  return out;
}

/** The 2-bit count of entry `e` (0..16319) of a bitmap block: bit 2s is the high bit, 2s+1 the low bit. */
export function bitmapEntry(buf: Buffer, e: number): number {
  const x = buf.readUInt32LE(BITMAP_HEADER_SIZE + 4 * Math.floor(e / 16));
  const s = 2 * (e % 16);
  return (((x >>> s) & 1) << 1) | ((x >>> (s + 1)) & 1);
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

export interface BitmapCounts {
  /** Entries with a non-zero count. */
  used: number;
  /** Entries with count 3 (≥ 3, in the overflow tree). */
  overflow: number;
}

/** Counts the first `nrEntries` entries of a bitmap block. */
export function countBitmap(buf: Buffer, nrEntries: number): BitmapCounts {
  let used = 0;
  let overflow = 0;
  const words = Math.ceil(nrEntries / 16);
  for (let w = 0; w < words; w++) {
    let x = buf.readUInt32LE(BITMAP_HEADER_SIZE + 4 * w);
    const left = nrEntries - w * 16;
    if (left < 16) x &= (1 << (2 * left)) - 1;
    used += popcount((x | (x >>> 1)) & 0x55555555);
    overflow += popcount(x & (x >>> 1) & 0x55555555);
  }
  return { used, overflow };
}
