/**
 * Streams one thin device out of a pool's data file into an image: virtual block v of the device is
 * data block d of the data file per the device's mapping tree; unmapped blocks read as zeros and are
 * left as holes (sparse) or written as zeros. The image is cut at `size` bytes (the pool keeps no
 * device size: the caller supplies it). The sha256 of the image is computed while writing (zeros
 * hashed for holes), so nothing is read back.
 *
 * Memory is bounded: three reusable buffers (`bufferBytes` each) and a 1 MiB zero block, whatever the
 * device size. Runs of the mapping are gathered into one buffer (several preads at their data offsets,
 * one pwrite for a contiguous stretch of the image); the next buffers are read and the previous ones
 * written while the current one is hashed. The data file is opened read-only.
 *
 * The data is a file or block device (`dataPath`) or a logical byte space made of extents of one or more
 * files (`dataExtents`: the `_tdata` LV of an LVM thin pool inside disk images, LVM's extents as byte ranges
 * of the images); a read that crosses an extent boundary becomes one pread per piece (ExtentMap.pieces).
 *
 * Knows nothing of Docker. Errors are DmiError: BAD_INPUT (size not a multiple of 512, a mapped block
 * past the end of the data file, a mapping past the data space map — from ThinPool.mappingRuns),
 * NOT_FOUND (unknown device id, missing data file), IO (a write failed: ENOSPC, EIO, ...; the caller
 * removes the partial output).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { DmiError, fsError } from '../errors.js';
import { ExtentMap, type Extent } from './block-source.js';
import type { MappingRun, ThinPool } from './pool.js';

export const DEFAULT_COPY_BUFFER = 4 * 1024 * 1024;
const ZERO = Buffer.alloc(1024 * 1024);
/** Buffers in the read → hash/write ring. */
const SLOTS = 3;

export interface CopyProgress {
  /** Image bytes produced so far (written or left as holes), in image order. */
  done: number;
  /** The image size. */
  total: number;
  /** Bytes read from the data file so far. */
  copied: number;
}

export interface CopyDeviceOptions {
  pool: ThinPool;
  devId: number;
  /**
   * The pool's data file (or block device), opened read-only. With `dataExtents`: the default path of extents
   * that name none (and the name in messages unless `dataLabel`).
   */
  dataPath: string;
  /** The data is these byte ranges, concatenated in order (an LVM `_tdata` LV inside disk images). */
  dataExtents?: Extent[];
  /** Name of the data in messages (e.g. `disk.img: docker/thinpool_tdata`); default `dataPath`. */
  dataLabel?: string;
  /** Image size in bytes (a multiple of 512); mappings past it are not copied. */
  size: number;
  /** Output file descriptor, opened for writing; written with pwrite from offset 0. */
  out: number;
  /** Name of the output for messages. */
  outName?: string;
  /** Leave unmapped blocks as holes (ftruncate + skip). Default true; false writes zeros. */
  sparse?: boolean;
  /** Bytes per buffer (three are used). Default 4 MiB. */
  bufferBytes?: number;
  onProgress?: (p: CopyProgress) => void;
  signal?: AbortSignal;
  /**
   * The mapping runs to copy, in virtual-block order, instead of `pool.mappingRuns(devId)` (a deleted device
   * rebuilt from stale metadata, stale.ts); `devId` then only names the device in messages.
   */
  runs?: Iterable<MappingRun>;
}

export interface CopyResult {
  size: number;
  sha256: string;
  /** Bytes the device maps (all its mappings, also past `size`). */
  mappedBytes: number;
  /** Bytes read from the data file and written (mappings inside `size`). */
  copiedBytes: number;
  /** Unmapped stretches of the image (each one hole, whatever its length). */
  holes: number;
  holeBytes: number;
  /** Coalesced mapping runs of the device. */
  runs: number;
  /** Bytes mapped at or past `size` (not copied). */
  mappedPastEnd: number;
  reads: number;
  writes: number;
}

interface Read {
  /** Offset in the batch buffer. */
  at: number;
  /** Byte offset in the data (file, or logical offset in the extents). */
  pos: number;
  len: number;
  dblock: number;
  vblock: number;
}

/** A contiguous stretch [outPos, outPos+len) of the image, preceded by `zerosBefore` bytes of hole (sparse). */
interface Batch {
  zerosBefore: number;
  outPos: number;
  len: number;
  reads: Read[];
  /** [offset, length] in the batch buffer to zero (holes written as zeros). */
  fills: [number, number][];
}

function readAsync(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

function writeAsync(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

/** Copies thin device `devId` into `out`; see the module comment. */
export async function copyThinDevice(o: CopyDeviceOptions): Promise<CopyResult> {
  const { pool, devId, dataPath, size } = o;
  const outName = o.outName ?? `fd ${o.out}`;
  if (!Number.isSafeInteger(size) || size < 0 || size % 512 !== 0) {
    throw new DmiError('BAD_INPUT', `device size ${size} is not a non-negative multiple of 512 bytes`);
  }
  if (!o.runs && !pool.mappingRoots().some((r) => r.devId === devId)) {
    throw new DmiError('NOT_FOUND', `thin device ${devId} is not in the pool's mapping tree (${pool.path})`);
  }
  const bs = pool.dataBlockBytes;
  const bufBytes = Math.max(512, Math.floor((o.bufferBytes ?? DEFAULT_COPY_BUFFER) / 512) * 512);

  const outSt = fs.fstatSync(o.out);
  const dataName = o.dataLabel ?? dataPath;
  const map = o.dataExtents ? new ExtentMap(o.dataExtents, dataPath) : null;
  // Every file the data is read from, opened read-only (one for a data file, one per image for extents).
  const fds = new Map<string, number>();
  const closeAll = () => {
    for (const fd of fds.values()) fs.closeSync(fd);
    fds.clear();
  };
  let dataSt: fs.Stats | null = null;
  for (const p of map ? map.extents.map((e) => e.path) : [dataPath]) {
    if (fds.has(p)) continue;
    let fd: number;
    try {
      fd = fs.openSync(p, 'r');
    } catch (e) {
      closeAll();
      throw fsError(e, p, 'open');
    }
    fds.set(p, fd);
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) throw new DmiError('BAD_INPUT', `${p}: is a directory, expected the pool data file or device`, { path: p });
      dataSt ??= st;
    } catch (e) {
      closeAll();
      throw fsError(e, p);
    }
  }
  // The size of the data is known for a regular data file or extents: check every mapped block against it
  // before reading. (An image shorter than its extents shows as a short read, named the same way.)
  const dataSize = map ? map.length : dataSt?.isFile() ? dataSt.size : null;
  const what = map ? 'data' : 'data file';
  /** The file ranges holding data bytes [pos, pos + len). */
  const pieces = (pos: number, len: number): { fd: number; path: string; offset: number; length: number; at: number }[] => {
    if (!map) return [{ fd: fds.get(dataPath)!, path: dataPath, offset: pos, length: len, at: pos }];
    return [...map.pieces(pos, len)].map((p) => ({ ...p, fd: fds.get(p.path)! }));
  };
  const sparse = (o.sparse ?? true) && outSt.isFile();

  const res: CopyResult = { size, sha256: '', mappedBytes: 0, copiedBytes: 0, holes: 0, holeBytes: 0, runs: 0, mappedPastEnd: 0, reads: 0, writes: 0 };
  const pastEnd = (dblock: number, vblock: number) =>
    new DmiError(
      'BAD_INPUT',
      `${dataName}: data block ${dblock} (virtual block ${vblock} of thin device ${devId}) is past the end of the ${what} (${dataSize ?? 'short read'}${dataSize === null ? '' : ' bytes'}; ${bs} bytes per block)`,
      { path: dataName, dataBlock: dblock, virtualBlock: vblock },
    );

  /** Image stretches in order, each at most bufBytes. */
  function* batches(): Generator<Batch> {
    let pos = 0; // image bytes planned so far
    let cur: Batch | null = null;
    let pendingZeros = 0;
    const newBatch = (at: number): Batch => {
      const b: Batch = { zerosBefore: pendingZeros, outPos: at, len: 0, reads: [], fills: [] };
      pendingZeros = 0;
      return b;
    };
    /** The hole [pos, pos+len): counted, then hashed only (sparse) or zero-filled in batches. */
    const hole = function* (len: number): Generator<Batch> {
      if (len <= 0) return;
      res.holes++;
      res.holeBytes += len;
      if (sparse) {
        if (cur) yield cur;
        cur = null;
        pendingZeros += len;
        pos += len;
        return;
      }
      let left = len;
      while (left > 0) {
        if (!cur || cur.len === bufBytes) {
          if (cur) yield cur;
          cur = newBatch(pos);
        }
        const n = Math.min(left, bufBytes - cur.len);
        cur.fills.push([cur.len, n]);
        cur.len += n;
        left -= n;
        pos += n;
      }
    };
    for (const run of o.runs ?? pool.mappingRuns(devId)) {
      res.runs++;
      res.mappedBytes += run.length * bs;
      const vStart = run.vblock * bs;
      const vEnd = Math.min((run.vblock + run.length) * bs, size);
      if (vStart >= size) {
        res.mappedPastEnd += run.length * bs;
        continue;
      }
      res.mappedPastEnd += (run.vblock + run.length) * bs - vEnd;
      const dEnd = (run.dblock + run.length) * bs;
      if (!Number.isSafeInteger(dEnd)) throw new DmiError('BAD_INPUT', `thin device ${devId}: data block ${run.dblock + run.length - 1} is beyond a safe byte offset`);
      if (dataSize !== null && run.dblock * bs + (vEnd - vStart) > dataSize) {
        // Name the first block that does not fit.
        const first = Math.max(0, Math.floor((dataSize - run.dblock * bs) / bs));
        throw pastEnd(run.dblock + first, run.vblock + first);
      }
      yield* hole(vStart - pos);
      let v = vStart;
      while (v < vEnd) {
        if (!cur || cur.len === bufBytes) {
          if (cur) yield cur;
          cur = newBatch(v);
        }
        const n = Math.min(vEnd - v, bufBytes - cur.len);
        const off = v - vStart;
        cur.reads.push({ at: cur.len, pos: run.dblock * bs + off, len: n, dblock: run.dblock + Math.floor(off / bs), vblock: run.vblock + Math.floor(off / bs) });
        cur.len += n;
        v += n;
        pos += n;
        res.copiedBytes += n;
      }
    }
    yield* hole(size - pos);
    if (cur) yield cur;
    if (pendingZeros > 0) yield newBatch(size);
  }

  const fill = async (buf: Buffer, b: Batch): Promise<void> => {
    for (const [at, n] of b.fills) buf.fill(0, at, at + n);
    await Promise.all(
      b.reads.flatMap((r) =>
        pieces(r.pos, r.len).map(async (p) => {
          // `done` counts bytes of the read r; this piece covers [p.at - r.pos, + p.length) of it
          let done = p.at - r.pos;
          const end = done + p.length;
          while (done < end) {
            let got: number;
            try {
              got = await readAsync(p.fd, buf, r.at + done, end - done, p.offset + (done - (p.at - r.pos)));
            } catch (e) {
              throw fsError(e, p.path);
            }
            res.reads++;
            if (got === 0) {
              const dblock = r.dblock + Math.floor(done / bs);
              const vblock = r.vblock + Math.floor(done / bs);
              if (!map) throw pastEnd(dblock, vblock);
              // The extents say the block is there; the file holding it ends before it.
              const at = p.offset + (done - (p.at - r.pos));
              let fileSize = '?';
              try {
                fileSize = String(fs.fstatSync(p.fd).size);
              } catch {
                // the size is informative only
              }
              throw new DmiError(
                'BAD_INPUT',
                `${dataName}: data block ${dblock} (virtual block ${vblock} of thin device ${devId}) is at byte ${at} of ${p.path}, past its end (${fileSize} bytes): truncated image?`,
                { path: p.path, dataBlock: dblock, virtualBlock: vblock },
              );
            }
            done += got;
          }
        }),
      ),
    );
  };

  const write = async (buf: Buffer, b: Batch): Promise<void> => {
    let done = 0;
    while (done < b.len) {
      let n: number;
      try {
        n = await writeAsync(o.out, buf, done, b.len - done, b.outPos + done);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err?.code === 'ENOSPC') throw new DmiError('IO', `${outName}: no space left on device (writing byte ${b.outPos + done} of ${size})`, { path: outName });
        throw fsError(e, outName, 'write');
      }
      res.writes++;
      if (n === 0) throw new DmiError('IO', `${outName}: write returned 0 at byte ${b.outPos + done}`, { path: outName });
      done += n;
    }
  };

  const hash = createHash('sha256');
  /** Hashes the hole [at, at+n) as zeros, reporting progress every 64 MiB (a hole can be most of the image). */
  const hashZeros = (at: number, n: number) => {
    let since = 0;
    while (n > 0) {
      const k = Math.min(n, ZERO.length);
      hash.update(ZERO.subarray(0, k));
      n -= k;
      at += k;
      since += k;
      if (since >= 64 * 1024 * 1024 && n > 0) {
        since = 0;
        if (o.signal?.aborted) throw new DmiError('IO', `${outName}: export interrupted`);
        o.onProgress?.({ done: at, total: size, copied: res.copiedBytes });
      }
    }
  };

  // A ring of SLOTS buffers: while one stretch is hashed (this thread), the previous ones are written and the
  // next ones read (libuv thread pool). A buffer is refilled only once its write is done.
  const bufs = Array.from({ length: SLOTS }, () => Buffer.allocUnsafe(bufBytes));
  const writing: (Promise<void> | null)[] = new Array(SLOTS).fill(null);
  const filling: (Promise<void> | null)[] = new Array(SLOTS).fill(null);
  const batchIn: (Batch | null)[] = new Array(SLOTS).fill(null);
  const inflight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inflight.add(p);
    p.then(
      () => inflight.delete(p),
      () => inflight.delete(p),
    );
    return p;
  };
  try {
    if (sparse) {
      try {
        // Drop old contents only when there are any (--force): truncating a file to 0 and rewriting it makes ext4
        // (auto_da_alloc) flush all of it at close, which costs as much as the copy itself.
        if (fs.fstatSync(o.out).size > 0) fs.ftruncateSync(o.out, 0);
        fs.ftruncateSync(o.out, size);
      } catch (e) {
        throw fsError(e, outName, 'set the size of');
      }
    }
    const it = batches();
    let toFill = 0;
    const startFill = (): boolean => {
      const n = it.next();
      if (n.done) return false;
      const s = toFill;
      toFill = (toFill + 1) % SLOTS;
      const prior = writing[s];
      batchIn[s] = n.value;
      filling[s] = track(
        (async () => {
          if (prior) await prior;
          await fill(bufs[s]!, n.value);
        })(),
      );
      return true;
    };
    let pending = 0;
    for (let i = 0; i < SLOTS - 1; i++) if (startFill()) pending++;
    let slot = 0;
    let done = 0;
    while (pending > 0) {
      if (o.signal?.aborted) throw new DmiError('IO', `${outName}: export interrupted`);
      await filling[slot];
      const b = batchIn[slot]!;
      const buf = bufs[slot]!;
      writing[slot] = b.len > 0 ? track(write(buf, b)) : null;
      pending--;
      if (startFill()) pending++;
      hashZeros(b.outPos - b.zerosBefore, b.zerosBefore);
      if (b.len > 0) hash.update(buf.subarray(0, b.len));
      done = b.outPos + b.len;
      o.onProgress?.({ done, total: size, copied: res.copiedBytes });
      slot = (slot + 1) % SLOTS;
    }
    for (const w of writing) if (w) await w;
    if (done !== size) throw new Error(`copy planned ${done} bytes, expected ${size}`);
    res.sha256 = hash.digest('hex');
    return res;
  } finally {
    // Never close the descriptors under a read or write still running in the thread pool.
    await Promise.allSettled([...inflight]);
    closeAll();
  }
}
