/** Little-endian u64 fields as JS numbers, refusing values above 2^53 (corrupt for every field we read). */
import { DmiError } from '../errors.js';

export const TWO32 = 2 ** 32;

/** The u64 at `off` as a number; throws BAD_INPUT naming `where` and `field` if it is ≥ 2^53. */
export function u64(buf: Buffer, off: number, where: string, field: string): number {
  const lo = buf.readUInt32LE(off);
  const hi = buf.readUInt32LE(off + 4);
  if (hi >= 0x200000) {
    throw new DmiError('BAD_INPUT', `${where}: ${field} is too large (0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')})`);
  }
  return hi * TWO32 + lo;
}
