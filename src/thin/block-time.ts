/**
 * A bottom-level mapping value: the u64 `block_time` = data block << 24 | time (dm-thin-metadata.c
 * `pack_block_time` / `unpack_block_time`). Read as two u32 words so hot loops stay on numbers.
 */
export const TIME_BITS = 24;
const TIME_MASK = (1 << TIME_BITS) - 1;

/** The data block of a block_time whose low word is `lo` and high word `hi`. */
export function blockOfBlockTime(lo: number, hi: number): number {
  return hi * 256 + (lo >>> TIME_BITS);
}

/** The time (snapshot generation) of a block_time whose low word is `lo`. */
export function timeOfBlockTime(lo: number): number {
  return lo & TIME_MASK;
}

/** Both halves of a block_time. */
export function decodeBlockTime(lo: number, hi: number): { block: number; time: number } {
  return { block: blockOfBlockTime(lo, hi), time: timeOfBlockTime(lo) };
}
