/** Extent maps: a logical byte space made of byte ranges of files (an LVM logical volume inside disk images). */
import { DmiError } from '../errors.js';

/** A byte range of a file: `length` bytes at byte `offset` of `path` (default: the path given to open). */
export interface Extent {
  path?: string;
  offset: number;
  length: number;
}

/** An extent placed in a logical byte space: logical bytes [at, at + length) are `path` bytes [offset, offset + length). */
export interface PlacedExtent {
  path: string;
  offset: number;
  length: number;
  at: number;
}

/**
 * A logical byte space made of extents of files, in order. Pure arithmetic (opens nothing): `pieces(pos,
 * len)` says which file ranges hold logical bytes [pos, pos + len). For exporters reading an LVM data LV.
 */
export class ExtentMap {
  readonly extents: readonly PlacedExtent[];
  readonly length: number;

  constructor(extents: readonly Extent[], defaultPath?: string) {
    const placed: PlacedExtent[] = [];
    let at = 0;
    for (const e of extents) {
      const path = e.path ?? defaultPath;
      if (path === undefined) throw new DmiError('USAGE', 'extent without a path');
      if (!Number.isSafeInteger(e.offset) || e.offset < 0)
        throw new DmiError('USAGE', `${path}: bad extent offset ${e.offset}`);
      if (!Number.isSafeInteger(e.length) || e.length < 0)
        throw new DmiError('USAGE', `${path}: bad extent length ${e.length}`);
      if (e.length === 0) continue;
      const last = placed[placed.length - 1];
      if (last && last.path === path && last.offset + last.length === e.offset) last.length += e.length;
      else placed.push({ path, offset: e.offset, length: e.length, at });
      at += e.length;
      if (!Number.isSafeInteger(at)) throw new DmiError('USAGE', 'extents add up to more than 2^53 bytes');
    }
    this.extents = placed;
    this.length = at;
  }

  /** Index of the extent holding logical byte `pos` (pos < length). */
  private find(pos: number): number {
    let lo = 0;
    let hi = this.extents.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.extents[mid]!.at <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The file ranges holding logical bytes [pos, pos + len), in order (`at` is the logical position of each piece). */
  *pieces(pos: number, len: number): Generator<PlacedExtent> {
    if (!(pos >= 0 && len >= 0 && pos + len <= this.length)) {
      throw new DmiError('BAD_INPUT', `range ${pos}+${len} is past the end of the extents (${this.length} bytes)`);
    }
    if (len === 0) return;
    let i = this.find(pos);
    let p = pos;
    const end = pos + len;
    while (p < end) {
      const e = this.extents[i++]!;
      const skip = p - e.at;
      const n = Math.min(e.length - skip, end - p);
      yield { path: e.path, offset: e.offset + skip, length: n, at: p };
      p += n;
    }
  }
}
