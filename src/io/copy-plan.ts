/**
 * The read plan of a device export, as data (no I/O): from the device's mapping runs (virtual block →
 * data block, in virtual order), the image size, the block size and the layout of the data (one file, or
 * extents of files), which bytes to read from where, where they go in the image, and what is a hole.
 *
 * The image is cut into windows of at most `windowBytes`, in image (virtual) order; each window is one buffer
 * of the executor (src/io/copy-executor.ts). Inside a window the reads are sorted by their place in the data
 * (file, then byte offset) and physically adjacent pieces are merged into one read, even when they land at
 * different places of the window (a scatter read: one `preadv` with several buffers). So a device whose
 * blocks are scattered over the data is read in data-file order within each window, and a window is hashed
 * and written in image order once its reads are done.
 *
 * Holes (unmapped stretches) are zero-filled in the window (and written, unless `sparse`). In sparse mode a
 * hole of `bigHoleBytes` or more is not put in any window: it ends the window before it and is carried as
 * `zerosBefore` of the next (hashed as zeros, nothing written). Memory is bounded by one window: the runs are
 * pulled from the iterable as the windows are consumed.
 *
 * Errors are DmiError BAD_INPUT: runs out of virtual order or overlapping, a mapped block past the end of the
 * data (when its size is known), a byte offset past 2^53.
 */
import { DmiError } from '../errors.js';
import type { ExtentMap } from './extents.js';

/** `length` blocks mapped: virtual blocks [vblock, vblock + length) are data blocks [dblock, dblock + length). */
export interface CopyRun {
  vblock: number;
  dblock: number;
  length: number;
}

export interface CopyPlanOptions {
  /** Mapping runs in increasing virtual order, not overlapping (e.g. ThinPool.mappingRuns). */
  runs: Iterable<CopyRun>;
  /** Image size in bytes (a multiple of 512); mappings at or past it are counted, not copied. */
  size: number;
  /** Bytes per data block. */
  blockBytes: number;
  /** The data file (or block device): the path of every read when there are no extents. */
  dataPath: string;
  /** The data is this logical byte space (an LVM `_tdata` LV): reads are split at extent boundaries. */
  extents?: ExtentMap;
  /** Size of the data in bytes if known (a regular file; with `extents`, their length is used). */
  dataBytes: number | null;
  /** Bytes per window (a multiple of 512 is used; at least 512). */
  windowBytes: number;
  /** Leave holes unwritten (the output is a file already sized to `size`). */
  sparse: boolean;
  /** Sparse holes of at least this many bytes are carried between windows (default min(windowBytes, 1 MiB)). */
  bigHoleBytes?: number;
  /** Names in messages: the data (default dataPath) and the device (default "the device"). */
  dataName?: string;
  deviceName?: string;
}

/** One read(2)/preadv(2): `length` bytes at byte `offset` of `path`, scattered into the window at `into`. */
export interface PlannedRead {
  path: string;
  offset: number;
  length: number;
  /** Logical position of the first byte in the data (= offset without extents): data block = floor(pos / bs). */
  dataPos: number;
  /** [offset in the window, length] pieces, in data order; their lengths add up to `length`. */
  into: [number, number][];
}

/** A stretch [outPos, outPos + len) of the image, preceded by `zerosBefore` hole bytes that are in no window. */
export interface CopyWindow {
  zerosBefore: number;
  outPos: number;
  len: number;
  /** Sorted by path (in order of first use), then offset; physically adjacent pieces merged. */
  reads: PlannedRead[];
  /** [offset, length] ranges of the window that are holes: zero-filled. */
  fills: [number, number][];
  /** [offset, length] ranges of the window to write at outPos + offset (all of it unless sparse). */
  writes: [number, number][];
}

export interface CopyTotals {
  /** Bytes the runs map (also past `size`). */
  mappedBytes: number;
  /** Bytes to read and write (mappings inside `size`). */
  copiedBytes: number;
  /** Unmapped stretches of the image (each one hole, whatever its length). */
  holes: number;
  holeBytes: number;
  /** Runs given. */
  runs: number;
  /** Bytes mapped at or past `size`. */
  mappedPastEnd: number;
  /** Reads planned (after merging and splitting at extent boundaries). */
  reads: number;
  /** Reads that took more than one run piece (merged physically adjacent pieces). */
  mergedReads: number;
}

export interface CopyPlan {
  /** The windows, in image order; pulled lazily (one pass). */
  windows: Iterable<CopyWindow>;
  /** Totals so far: complete once `windows` is exhausted. */
  readonly totals: CopyTotals;
}

/** Most buffers per preadv (Linux IOV_MAX). */
export const MAX_IOV = 1024;

/** The message for a mapped block past the end of the data. */
export function pastEndError(
  o: { dataName: string; deviceName: string; extents: boolean; dataBytes: number | null; blockBytes: number },
  dblock: number,
  vblock: number,
): DmiError {
  const what = o.extents ? 'data' : 'data file';
  return new DmiError(
    'BAD_INPUT',
    `${o.dataName}: data block ${dblock} (virtual block ${vblock} of ${o.deviceName}) is past the end of the ${what} (${o.dataBytes ?? 'short read'}${o.dataBytes === null ? '' : ' bytes'}; ${o.blockBytes} bytes per block)`,
    { path: o.dataName, dataBlock: dblock, virtualBlock: vblock },
  );
}

/** A window being planned. */
interface Win {
  outPos: number;
  len: number;
  pieces: Piece[];
  fills: [number, number][];
  /** Mapped ranges of the window (the writes when sparse). */
  mapped: [number, number][];
}

interface Piece {
  path: string;
  /** Order of first use of `path` (sort key). */
  file: number;
  offset: number;
  length: number;
  dataPos: number;
  at: number;
}

/** Plans the copy; see the module comment. Throws BAD_INPUT for a size that is not a multiple of 512. */
export function planCopy(o: CopyPlanOptions): CopyPlan {
  const { size, blockBytes: bs, sparse } = o;
  if (!Number.isSafeInteger(size) || size < 0 || size % 512 !== 0) {
    throw new DmiError('BAD_INPUT', `device size ${size} is not a non-negative multiple of 512 bytes`);
  }
  if (!Number.isSafeInteger(bs) || bs <= 0) throw new DmiError('BAD_INPUT', `bad data block size ${bs}`);
  const W = Math.max(512, Math.floor(o.windowBytes / 512) * 512);
  const bigHole = o.bigHoleBytes ?? Math.min(W, 1024 * 1024);
  const map = o.extents ?? null;
  const dataBytes = map ? map.length : o.dataBytes;
  const names = {
    dataName: o.dataName ?? o.dataPath,
    deviceName: o.deviceName ?? 'the device',
    extents: map !== null,
    dataBytes,
    blockBytes: bs,
  };
  const totals: CopyTotals = {
    mappedBytes: 0,
    copiedBytes: 0,
    holes: 0,
    holeBytes: 0,
    runs: 0,
    mappedPastEnd: 0,
    reads: 0,
    mergedReads: 0,
  };
  const fileIndex = new Map<string, number>();
  const fileOf = (p: string): number => {
    let i = fileIndex.get(p);
    if (i === undefined) fileIndex.set(p, (i = fileIndex.size));
    return i;
  };

  function* windows(): Generator<CopyWindow> {
    let pos = 0; // image bytes planned so far
    let lastEnd = 0; // end of the previous run (virtual bytes)
    let pendingZeros = 0;
    let cur: Win | null = null;
    const close = (): CopyWindow | null => {
      if (!cur) return null;
      const w = finish(cur, pendingZeros);
      pendingZeros = 0;
      cur = null;
      return w;
    };
    /** The window being filled, a new one when there is none or it is full. */
    function* current(): Generator<CopyWindow, Win> {
      if (cur && cur.len < W) return cur;
      const w = close();
      if (w) yield w;
      cur = { outPos: pos, len: 0, pieces: [], fills: [], mapped: [] };
      return cur;
    }
    const finish = (c: Win, zerosBefore: number): CopyWindow => {
      const reads = mergeReads(c.pieces);
      totals.reads += reads.length;
      for (const r of reads) if (r.into.length > 1) totals.mergedReads++;
      const writes: [number, number][] = sparse ? c.mapped : c.len > 0 ? [[0, c.len]] : [];
      return { zerosBefore, outPos: c.outPos, len: c.len, reads, fills: c.fills, writes };
    };
    /** Adds [at, at + n) to a list of ranges, extending the last one when adjacent. */
    const addRange = (list: [number, number][], at: number, n: number) => {
      const last = list[list.length - 1];
      if (last && last[0] + last[1] === at) last[1] += n;
      else list.push([at, n]);
    };

    function* hole(len: number): Generator<CopyWindow> {
      if (len <= 0) return;
      totals.holes++;
      totals.holeBytes += len;
      if (sparse && len >= bigHole) {
        const w = close();
        if (w) yield w;
        pendingZeros += len;
        pos += len;
        return;
      }
      let left = len;
      while (left > 0) {
        const c = yield* current();
        const n = Math.min(left, W - c.len);
        addRange(c.fills, c.len, n);
        c.len += n;
        left -= n;
        pos += n;
      }
    }

    for (const run of o.runs) {
      totals.runs++;
      const { vblock, dblock, length } = run;
      if (![vblock, dblock, length].every((x) => Number.isSafeInteger(x) && x >= 0) || length === 0) {
        throw new DmiError(
          'BAD_INPUT',
          `${names.deviceName}: bad mapping run (virtual block ${vblock}, data block ${dblock}, ${length} blocks)`,
        );
      }
      const dEnd = (dblock + length) * bs;
      const vEndAll = (vblock + length) * bs;
      if (!Number.isSafeInteger(dEnd) || !Number.isSafeInteger(vEndAll)) {
        throw new DmiError(
          'BAD_INPUT',
          `${names.deviceName}: data block ${dblock + length - 1} is beyond a safe byte offset`,
        );
      }
      totals.mappedBytes += length * bs;
      const vStart = vblock * bs;
      if (vStart < lastEnd) {
        throw new DmiError(
          'BAD_INPUT',
          `${names.deviceName}: mapping of virtual block ${vblock} is out of order or overlaps the one before it`,
          { virtualBlock: vblock },
        );
      }
      lastEnd = vEndAll;
      const vEnd = Math.min(vEndAll, size);
      if (vStart >= size) {
        totals.mappedPastEnd += length * bs;
        continue;
      }
      totals.mappedPastEnd += vEndAll - vEnd;
      if (dataBytes !== null && dblock * bs + (vEnd - vStart) > dataBytes) {
        // Name the first block that does not fit.
        const first = Math.max(0, Math.floor((dataBytes - dblock * bs) / bs));
        throw pastEndError(names, dblock + first, vblock + first);
      }
      yield* hole(vStart - pos);
      let v = vStart;
      while (v < vEnd) {
        const c = yield* current();
        const n = Math.min(vEnd - v, W - c.len);
        const dataPos = dblock * bs + (v - vStart);
        if (map) {
          for (const p of map.pieces(dataPos, n)) {
            c.pieces.push({
              path: p.path,
              file: fileOf(p.path),
              offset: p.offset,
              length: p.length,
              dataPos: p.at,
              at: c.len + (p.at - dataPos),
            });
          }
        } else {
          c.pieces.push({ path: o.dataPath, file: 0, offset: dataPos, length: n, dataPos, at: c.len });
        }
        addRange(c.mapped, c.len, n);
        c.len += n;
        v += n;
        pos += n;
        totals.copiedBytes += n;
      }
    }
    if (pos < size) yield* hole(size - pos);
    const w = close();
    if (w) yield w;
    if (pendingZeros > 0) yield { zerosBefore: pendingZeros, outPos: size, len: 0, reads: [], fills: [], writes: [] };
  }

  return { windows: windows(), totals };
}

/** Sorts the pieces by place in the data and merges physically adjacent ones into scatter reads. */
function mergeReads(pieces: Piece[]): PlannedRead[] {
  pieces.sort((a, b) => a.file - b.file || a.offset - b.offset);
  const out: PlannedRead[] = [];
  let last: (PlannedRead & { file: number }) | null = null;
  for (const p of pieces) {
    // Adjacent in the file and in the data's logical space (extents adjacent in a file but not in the LV stay apart).
    const adjacent =
      last &&
      last.file === p.file &&
      last.offset + last.length === p.offset &&
      last.dataPos + last.length === p.dataPos;
    if (last && adjacent && last.into.length < MAX_IOV) {
      const iov = last.into[last.into.length - 1]!;
      if (iov[0] + iov[1] === p.at) iov[1] += p.length;
      else last.into.push([p.at, p.length]);
      last.length += p.length;
    } else {
      last = {
        path: p.path,
        file: p.file,
        offset: p.offset,
        length: p.length,
        dataPos: p.dataPos,
        into: [[p.at, p.length]],
      };
      out.push(last);
    }
  }
  return out.map(({ path, offset, length, dataPos, into }) => ({ path, offset, length, dataPos, into }));
}
