/**
 * A little-endian cursor over a buffer, so on-disk decoders read fields in the order the structs declare them
 * (`u32`, `u64Safe`, `bytes`, `skip`), the way the kernel and thin-provisioning-tools lay them out. Every
 * read is bounds-checked; a u64 that cannot be a JS number (≥ 2^53) is corrupt for every field dminspect
 * reads and throws BAD_INPUT naming `where` and the field.
 */
import { DmiError } from '../errors.js';

export const TWO32 = 2 ** 32;

/** Largest high word of a u64 below 2^53. */
const MAX_SAFE_HI = 0x1fffff;

/** The u64 at `off` as a number; BAD_INPUT naming `where` and `field` if it is ≥ 2^53. */
export function u64Safe(buf: Buffer, off: number, where: string, field: string): number {
  const lo = buf.readUInt32LE(off);
  const hi = buf.readUInt32LE(off + 4);
  if (hi > MAX_SAFE_HI) {
    throw new DmiError(
      'BAD_INPUT',
      `${where}: ${field} is too large (0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')})`,
    );
  }
  return hi * TWO32 + lo;
}

export class LeCursor {
  private pos: number;

  /** `where` names the structure in errors (`superblock`, `disk.img: LVM label in sector 1`). */
  constructor(
    private readonly buf: Buffer,
    private readonly where: string,
    start = 0,
  ) {
    this.pos = start;
  }

  /** The byte offset of the next field. */
  get offset(): number {
    return this.pos;
  }

  /** Bytes left before the end of the buffer. */
  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private take(n: number, field: string): number {
    const at = this.pos;
    if (at + n > this.buf.length)
      throw new DmiError('BAD_INPUT', `${this.where}: ${field} runs past the end (${this.buf.length} bytes)`);
    this.pos += n;
    return at;
  }

  u8(field = 'u8'): number {
    return this.buf.readUInt8(this.take(1, field));
  }

  u32(field = 'u32'): number {
    return this.buf.readUInt32LE(this.take(4, field));
  }

  /** A u64 as a number; BAD_INPUT if ≥ 2^53. */
  u64Safe(field: string): number {
    return u64Safe(this.buf, this.take(8, field), this.where, field);
  }

  /** A u64 as a bigint (for fields compared, not counted). */
  u64Big(field = 'u64'): bigint {
    return this.buf.readBigUInt64LE(this.take(8, field));
  }

  /** `n` bytes as a view into the buffer. */
  bytes(n: number, field = 'bytes'): Buffer {
    const at = this.take(n, field);
    return this.buf.subarray(at, at + n);
  }

  skip(n: number, field = 'padding'): this {
    this.take(n, field);
    return this;
  }

  /** Moves to byte `off` (a field the struct places by offset). */
  seek(off: number): this {
    if (off < 0 || off > this.buf.length)
      throw new DmiError(
        'BAD_INPUT',
        `${this.where}: offset ${off} is outside the structure (${this.buf.length} bytes)`,
      );
    this.pos = off;
    return this;
  }
}
