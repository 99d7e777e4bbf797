/**
 * Copies mapped runs of a block device out of its data into an image, following the plan of
 * src/io/copy-plan.ts: window by window in image order, each window's reads sorted by place in the data
 * (physically adjacent pieces read with one scatter read), then the window written at its image offset and
 * hashed. The sha256 of the image (holes hashed as zeros) is computed while copying, nothing is read back.
 *
 * Two cores do the work: this thread reads and writes, and a worker thread hashes the windows already read,
 * from a ring of shared buffers (`SLOTS` windows). SHA-256 is the slowest step (one core), so it runs all the
 * time, in parallel with the I/O. Small images (under `HASH_WORKER_MIN_BYTES`) are hashed on this thread:
 * starting a worker costs more. Reads are synchronous pread/preadv while the data comes from the page cache (no
 * thread-pool round trip per block); when a window reads slower than 1 GB/s with this thread blocked (a disk),
 * the next windows' reads are all handed to the thread pool at once, so that the disk has a queue of requests in
 * data order, and the next window's reads start before the current one is written (see ReadMode).
 *
 * Memory is bounded by the ring (`SLOTS` × `bufferBytes`, default 3 × 4 MiB), whatever the device size.
 * The data (a file, a block device, or extents of several files) is opened read-only. Between windows the
 * event loop runs: the abort signal is checked and progress reported (image bytes hashed so far).
 *
 * Errors are DmiError: BAD_INPUT (size not a multiple of 512, a mapped block past the end of the data, see
 * copy-plan.ts), NOT_FOUND / PERMISSION (opening the data), IO (a write failed: ENOSPC, EIO, ...; interrupted).
 * The caller removes a partial output.
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import { DmiError, fsError } from '../errors.js';
import { workerThreads } from '../util/threads.js';
import { ExtentMap, type Extent } from './extents.js';
import {
  pastEndError,
  planCopy,
  type CopyPlan,
  type CopyRun,
  type CopyTotals,
  type CopyWindow,
  type PlannedRead,
} from './copy-plan.js';

/** Bytes per window (one buffer of the ring). */
export const DEFAULT_COPY_BUFFER = 4 * 1024 * 1024;
/** Windows in the ring: one being read/written here, the others queued for or being hashed by the worker. */
const SLOTS = 3;
/** Images at least this large are hashed in a worker thread (when `hashWorker` is 'auto'). */
export const HASH_WORKER_MIN_BYTES = 64 * 1024 * 1024;
/** Holes are hashed in jobs of at most this many bytes (progress and the abort signal between them). */
const ZERO_JOB = 64 * 1024 * 1024;

export interface CopyProgress {
  /** Image bytes produced so far (written or left as holes, and hashed), in image order. */
  done: number;
  /** The image size. */
  total: number;
  /** Bytes read from the data so far. */
  copied: number;
}

/** What a copy did: the plan's totals (every planned read is made), the digest, and how it ran. */
export interface CopyResult extends CopyTotals {
  size: number;
  sha256: string;
  /** write calls made. */
  writes: number;
  /** Windows read through the thread pool (data not in the page cache), the others synchronously. */
  asyncWindows: number;
  /** Whether the sha256 was computed in a worker thread. */
  hashedInWorker: boolean;
  /** ... by the worker prestartHashWorker() started ahead of the copy. */
  hashWorkerPrestarted: boolean;
}

export interface CopyRunsOptions {
  /** The mapping, in increasing virtual order (see copy-plan.ts). */
  runs: Iterable<CopyRun>;
  /** Bytes per data block. */
  blockBytes: number;
  /** The device in messages, e.g. `thin device 5`. */
  deviceName: string;
  /** The data file or block device, opened read-only; with `dataExtents`, the path of extents that name none. */
  dataPath: string;
  /** The data is these byte ranges, concatenated in order (an LVM `_tdata` LV inside disk images). */
  dataExtents?: Extent[];
  /** Name of the data in messages; default `dataPath`. */
  dataLabel?: string;
  /** Image size in bytes (a multiple of 512); mappings past it are not copied. */
  size: number;
  /** Output file descriptor, opened for writing; written with pwrite from offset 0. */
  out: number;
  /** Name of the output for messages. */
  outName?: string;
  /** Leave unmapped blocks as holes (ftruncate + skip) when the output is a regular file. Default true. */
  sparse?: boolean;
  /** Bytes per window. Default DEFAULT_COPY_BUFFER. */
  bufferBytes?: number;
  /** Windows in the ring when hashing in the worker (default SLOTS, at least 2). */
  slots?: number;
  /** Hash in a worker thread: 'auto' (default) does so for images of HASH_WORKER_MIN_BYTES or more. */
  hashWorker?: boolean | 'auto';
  /** Read windows on this thread ('sync'), through the thread pool ('async'), or choose by their speed ('auto'). */
  readMode?: 'sync' | 'async' | 'auto';
  onProgress?: (p: CopyProgress) => void;
  signal?: AbortSignal;
}

/** Throws BAD_INPUT unless `size` is a non-negative multiple of 512 bytes. */
export function checkImageSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0 || size % 512 !== 0) {
    throw new DmiError('BAD_INPUT', `device size ${size} is not a non-negative multiple of 512 bytes`);
  }
}

/** Hashes jobs in order; each job is acknowledged in order. */
interface Hasher {
  readonly inWorker: boolean;
  /** The worker was started ahead by prestartHashWorker(). */
  readonly prestarted: boolean;
  /** Hash `len` bytes of the ring at `at`. */
  window(at: number, len: number): void;
  zeros(n: number): void;
  /** Jobs acknowledged so far. */
  readonly acked: number;
  /** Resolves once `n` jobs are acknowledged. */
  whenAcked(n: number): Promise<void>;
  digest(): Promise<string>;
  close(): Promise<void>;
}

const ZERO = Buffer.alloc(1024 * 1024);

/** Hashes on this thread: every job is done (and acknowledged) when submitted. */
function localHasher(ring: Buffer): Hasher {
  const h = createHash('sha256');
  let acked = 0;
  return {
    inWorker: false,
    prestarted: false,
    window(at, len) {
      h.update(ring.subarray(at, at + len));
      acked++;
    },
    zeros(n) {
      for (; n > 0; n -= ZERO.length) h.update(n >= ZERO.length ? ZERO : ZERO.subarray(0, n));
      acked++;
    },
    get acked() {
      return acked;
    },
    whenAcked: () => Promise.resolve(),
    digest: () => Promise.resolve(h.digest('hex')),
    close: () => Promise.resolve(),
  };
}

/**
 * The worker's code (CommonJS, evaluated): its first message is the ring (a SharedArrayBuffer); then one sha256
 * over the jobs it is sent, in order; acknowledges each.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const zero = Buffer.alloc(1024 * 1024);
const h = createHash('sha256');
let ring = null;
parentPort.on('message', (m) => {
  if (m.ring !== undefined) {
    ring = Buffer.from(m.ring);
  } else if (m.z !== undefined) {
    for (let n = m.z; n > 0; n -= zero.length) h.update(n >= zero.length ? zero : zero.subarray(0, n));
    parentPort.postMessage(0);
  } else if (m.at !== undefined) {
    h.update(ring.subarray(m.at, m.at + m.len));
    parentPort.postMessage(0);
  } else {
    parentPort.postMessage(h.digest('hex'));
  }
});
`;

/** A hash worker started ahead of a copy (prestartHashWorker), not yet taken by one. */
let prestarted: { worker: Worker; dead: boolean } | null = null;

/**
 * Starts the sha256 worker of the next copy now, so that its start-up (tens of ms: a new isolate) overlaps the
 * caller's own (opening the pool, the output): the next copyRuns that hashes in a worker takes it, and its first
 * window is hashed as soon as it is read. The worker does not keep the process alive; dropPrestartedHashWorker()
 * ends it if no copy follows (e.g. the export failed before copying). Idempotent.
 */
export function prestartHashWorker(): void {
  if (prestarted && !prestarted.dead) return;
  const p = { worker: new (workerThreads().Worker)(WORKER_SOURCE, { eval: true }), dead: false };
  const dead = () => (p.dead = true);
  p.worker.on('error', dead); // a worker that failed to start: the copy starts its own
  p.worker.on('exit', dead);
  p.worker.unref();
  prestarted = p;
}

/** Ends a worker started by prestartHashWorker() that no copy took. */
export async function dropPrestartedHashWorker(): Promise<void> {
  const p = prestarted;
  prestarted = null;
  if (p && !p.dead) await p.worker.terminate();
}

/** The prestarted worker (taken), or a new one. */
function takeWorker(): { worker: Worker; prestarted: boolean } {
  const p = prestarted;
  prestarted = null;
  if (p && !p.dead) {
    p.worker.removeAllListeners();
    p.worker.ref();
    return { worker: p.worker, prestarted: true };
  }
  return { worker: new (workerThreads().Worker)(WORKER_SOURCE, { eval: true }), prestarted: false };
}

/** Hashes in a worker thread reading the shared ring. */
function workerHasher(ring: SharedArrayBuffer): Hasher {
  const { worker, prestarted: wasPrestarted } = takeWorker();
  worker.postMessage({ ring });
  let failed: DmiError | null = null;
  let acked = 0;
  let waiters: { n: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  let digestWaiter: { resolve: (s: string) => void; reject: (e: unknown) => void } | null = null;
  let closing = false;
  const fail = (e: unknown) => {
    failed ??=
      e instanceof DmiError ? e : new DmiError('IO', `sha256 worker failed: ${(e as Error)?.message ?? String(e)}`);
    for (const w of waiters) w.reject(failed);
    waiters = [];
    digestWaiter?.reject(failed);
    digestWaiter = null;
  };
  worker.on('message', (m: unknown) => {
    if (typeof m === 'string') {
      digestWaiter?.resolve(m);
      digestWaiter = null;
      return;
    }
    acked++;
    const ready = waiters.filter((w) => w.n <= acked);
    waiters = waiters.filter((w) => w.n > acked);
    for (const w of ready) w.resolve();
  });
  worker.on('error', fail);
  worker.on('exit', (code) => {
    if (!closing) fail(new DmiError('IO', `sha256 worker exited (${code})`));
  });
  const post = (m: object) => {
    if (failed) throw failed;
    worker.postMessage(m);
  };
  return {
    inWorker: true,
    prestarted: wasPrestarted,
    window: (at, len) => post({ at, len }),
    zeros: (n) => post({ z: n }),
    get acked() {
      return acked;
    },
    whenAcked(n) {
      if (acked >= n) return Promise.resolve();
      if (failed) return Promise.reject(failed);
      return new Promise<void>((resolve, reject) => waiters.push({ n, resolve, reject }));
    },
    digest() {
      if (failed) return Promise.reject(failed);
      return new Promise<string>((resolve, reject) => {
        digestWaiter = { resolve, reject };
        worker.postMessage({ digest: true });
      });
    },
    close() {
      // Not awaited: the worker holds no descriptor (only the ring), and its teardown (tens of ms on a busy
      // machine) need not delay the caller; unref'd, it does not keep the process alive either.
      closing = true;
      worker.unref();
      Promise.resolve(worker.terminate()).catch(() => {});
      return Promise.resolve();
    },
  };
}

/** Copies `o.runs` out of the data into `o.out`; see the module comment. */
export async function copyRuns(o: CopyRunsOptions): Promise<CopyResult> {
  const { dataPath, size, blockBytes: bs } = o;
  checkImageSize(size);
  const outName = o.outName ?? `fd ${o.out}`;
  const W = Math.max(512, Math.floor((o.bufferBytes ?? DEFAULT_COPY_BUFFER) / 512) * 512);
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
      if (st.isDirectory())
        throw new DmiError('BAD_INPUT', `${p}: is a directory, expected the pool data file or device`, { path: p });
      dataSt ??= st;
    } catch (e) {
      closeAll();
      throw fsError(e, p);
    }
  }
  let hasher: Hasher | null = null;
  try {
    // The size of the data is known for a regular data file or extents: the plan checks every mapped block
    // against it before reading. (An image shorter than its extents shows as a short read, named the same way.)
    const dataBytes = map ? map.length : dataSt?.isFile() ? dataSt.size : null;
    const sparse = (o.sparse ?? true) && fs.fstatSync(o.out).isFile();
    const names = { dataName, deviceName: o.deviceName, extents: map !== null, dataBytes, blockBytes: bs };
    const plan = planCopy({
      runs: o.runs,
      size,
      blockBytes: bs,
      dataPath,
      extents: map ?? undefined,
      dataBytes,
      windowBytes: W,
      sparse,
      dataName,
      deviceName: o.deviceName,
    });

    const useWorker =
      o.hashWorker === 'auto' || o.hashWorker === undefined ? size >= HASH_WORKER_MIN_BYTES : o.hashWorker;
    const slots = useWorker ? Math.max(2, Math.floor(o.slots ?? SLOTS)) : 1;
    const shared = useWorker ? new SharedArrayBuffer(W * slots) : null;
    const ring = shared ? Buffer.from(shared) : Buffer.allocUnsafe(W);
    hasher = shared ? workerHasher(shared) : localHasher(ring);

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
    const stats = { reads: 0, writes: 0, copied: 0, asyncWindows: 0 };
    const reader = new ReadMode(o.readMode ?? 'auto');
    try {
      await execute(plan, { o, reader, W, slots, ring, hasher, fds, stats, names, outName });
    } finally {
      reader.close();
    }
    const sha256 = await hasher.digest();
    const t = plan.totals;
    return {
      size,
      sha256,
      ...t,
      reads: stats.reads, // the reads made (the planned ones, counted as they happen)
      writes: stats.writes,
      asyncWindows: stats.asyncWindows,
      hashedInWorker: hasher.inWorker,
      hashWorkerPrestarted: hasher.prestarted,
    };
  } finally {
    // Nothing is in flight on the descriptors: reads through the thread pool all settle before fillWindow returns.
    await hasher?.close();
    closeAll();
  }
}

/** Page-cache copies run at several GB/s; a window read slower than this may be waiting on a disk. */
const SLOW_BYTES_PER_MS = 1e6;
/** Reading through the thread pool, try synchronous reads again every PROBE windows. */
const PROBE = 16;

/**
 * How windows are read: synchronously on this thread (data in the page cache: no round trip through the thread
 * pool per read, the cheapest), or all of a window's reads at once through the thread pool (data on a disk: the
 * disk gets a queue of requests, in data order). 'auto' starts synchronous and goes to the thread pool when a
 * window reads slower than SLOW and this thread spent most of that time blocked (waiting on the disk, per
 * /proc/thread-self/schedstat: not running and not waiting for a CPU — other processes taking the CPUs slow the
 * reads too, and there the thread pool only costs more); every PROBE windows it tries synchronous reads again.
 */
class ReadMode {
  sync: boolean;
  private asyncRun = 0;
  private stat: number | null = null;
  private readonly statBuf = Buffer.alloc(128);
  private mark: [number, number] | null = null;

  constructor(private readonly mode: 'sync' | 'async' | 'auto') {
    this.sync = mode !== 'async';
    if (mode === 'auto') {
      try {
        this.stat = fs.openSync('/proc/thread-self/schedstat', 'r');
      } catch {
        this.stat = null; // not Linux, or no schedstat: judge by the rate alone
      }
    }
  }

  /** This thread's [time on a CPU, time waiting for one] in ms, or null. */
  private sched(): [number, number] | null {
    if (this.stat === null) return null;
    try {
      const n = fs.readSync(this.stat, this.statBuf, 0, this.statBuf.length, 0);
      const [run, wait] = this.statBuf.toString('latin1', 0, n).split(' ').map(Number);
      return Number.isFinite(run) && Number.isFinite(wait) ? [run! / 1e6, wait! / 1e6] : null;
    } catch {
      return null;
    }
  }

  /** Before a window's reads. */
  begin(): void {
    this.mark = this.sync && this.mode === 'auto' ? this.sched() : null;
  }

  /** After a window's reads: `bytes` read in `ms`. */
  observe(bytes: number, ms: number): void {
    if (this.mode !== 'auto') return;
    if (!this.sync) {
      if (++this.asyncRun >= PROBE) {
        this.asyncRun = 0;
        this.sync = true;
      }
      return;
    }
    if (bytes < 256 * 1024 || bytes / Math.max(ms, 0.001) >= SLOW_BYTES_PER_MS) return;
    const now = this.mark ? this.sched() : null;
    const blocked = this.mark && now ? ms - (now[0] - this.mark[0]) - (now[1] - this.mark[1]) : ms;
    if (blocked > ms / 2) this.sync = false;
  }

  close(): void {
    if (this.stat !== null) fs.closeSync(this.stat);
    this.stat = null;
  }
}

interface ExecContext {
  o: CopyRunsOptions;
  reader: ReadMode;
  W: number;
  slots: number;
  ring: Buffer;
  hasher: Hasher;
  fds: Map<string, number>;
  stats: { reads: number; writes: number; copied: number; asyncWindows: number };
  names: Parameters<typeof pastEndError>[0];
  outName: string;
}

/** Runs the plan: fill a window (zeros, reads), hand it to the hasher, write it; the ring bounds what is queued. */
async function execute(plan: CopyPlan, c: ExecContext): Promise<void> {
  const { o, W, hasher, stats } = c;
  const size = o.size;
  /** Image position reached by each job not yet seen acknowledged, oldest first. */
  const ends: number[] = [];
  let seen = 0; // jobs seen acknowledged
  let done = 0;
  const progress = () => o.onProgress?.({ done, total: size, copied: stats.copied });
  /** Takes in the acknowledgements that arrived; waits for at least `need` more. */
  const acknowledge = async (need: number) => {
    if (need > 0) await hasher.whenAcked(seen + need);
    // One report per job (each window, each step of a hole), whenever its acknowledgement is taken in.
    while (seen < hasher.acked) {
      done = ends.shift()!;
      seen++;
      progress();
    }
  };
  /** Waits until a job can be queued (a slot is free); lets the event loop run (signals, progress). */
  const room = async () => {
    if (o.signal?.aborted) throw new DmiError('IO', `${c.outName}: export interrupted`);
    await acknowledge(Math.max(0, ends.length - (c.slots - 1)));
    if (!hasher.inWorker) await new Promise((r) => setImmediate(r));
    if (o.signal?.aborted) throw new DmiError('IO', `${c.outName}: export interrupted`);
  };
  let slot = 0;
  // A window whose reads were started ahead (through the thread pool) while the one before it was written.
  let ahead: { w: CopyWindow; slot: number; filled: Promise<void> } | null = null;
  const it = plan.windows[Symbol.iterator]();
  try {
    for (let cur = it.next(); !cur.done;) {
      const w = cur.value;
      cur = it.next();
      let at = w.outPos - w.zerosBefore;
      for (let z = w.zerosBefore; z > 0;) {
        await room();
        const k = Math.min(z, ZERO_JOB);
        at += k;
        z -= k;
        ends.push(at);
        hasher.zeros(k);
      }
      if (w.len === 0) continue;
      let filled: Promise<void>;
      if (ahead?.w === w) {
        // its slot was free when its reads started
        if (o.signal?.aborted) throw new DmiError('IO', `${c.outName}: export interrupted`);
        filled = ahead.filled;
      } else {
        await room();
        filled = fillWindow(c, w, slot * W);
      }
      ahead = null;
      await filled;
      const base = slot * W;
      ends.push(w.outPos + w.len);
      hasher.window(base, w.len);
      // Reading from a disk: start the next window's reads before writing this one, if its slot is free (the
      // windows not yet hashed are the last ones, and fewer than the ring).
      const next = cur.done ? null : cur.value;
      if (!c.reader.sync && next && next.len > 0 && ends.length <= c.slots - 1) {
        const s2 = (slot + 1) % c.slots;
        ahead = { w: next, slot: s2, filled: fillWindow(c, next, s2 * W) };
        ahead.filled.catch(() => {}); // awaited in turn, or below when leaving early
      }
      writeWindow(c, w, base);
      slot = (slot + 1) % c.slots;
    }
  } finally {
    // Never leave reads running on descriptors the caller is about to close.
    if (ahead) await ahead.filled.catch(() => {});
  }
  await acknowledge(ends.length);
  if (done !== size) throw new Error(`copy planned ${done} bytes, expected ${size}`);
}

/** Zero-fills the window's holes and reads its data, in the plan's (data) order. */
async function fillWindow(c: ExecContext, w: CopyWindow, base: number): Promise<void> {
  for (const [at, n] of w.fills) c.ring.fill(0, base + at, base + at + n);
  if (w.reads.length === 0) return;
  c.reader.begin();
  const t0 = performance.now();
  let bytes = 0;
  for (const r of w.reads) bytes += r.length;
  if (c.reader.sync) {
    for (const r of w.reads) readSync(c, w, r, base);
  } else {
    // All the window's reads at once (the thread pool runs a few at a time): a disk gets a queue to work on.
    const all = await Promise.allSettled(w.reads.map((r) => readAsync(c, w, r, base)));
    const failed = all.find((x) => x.status === 'rejected');
    if (failed) throw failed.reason;
    c.stats.asyncWindows++;
  }
  c.reader.observe(bytes, performance.now() - t0);
}

function readSync(c: ExecContext, w: CopyWindow, r: PlannedRead, base: number): void {
  const fd = c.fds.get(r.path)!;
  const views = r.into.map(([at, n]) => c.ring.subarray(base + at, base + at + n));
  let done = 0;
  while (done < r.length) {
    let got: number;
    try {
      got =
        views.length === 1
          ? fs.readSync(fd, views[0]!, 0, views[0]!.length, r.offset + done)
          : fs.readvSync(fd, views, r.offset + done);
    } catch (e) {
      throw fsError(e, r.path);
    }
    c.stats.reads++;
    if (got === 0) throw shortRead(c, w, r, done, fd);
    done += got;
    c.stats.copied += got;
    consume(views, got);
  }
}

async function readAsync(c: ExecContext, w: CopyWindow, r: PlannedRead, base: number): Promise<void> {
  const fd = c.fds.get(r.path)!;
  const views = r.into.map(([at, n]) => c.ring.subarray(base + at, base + at + n));
  let done = 0;
  while (done < r.length) {
    const pos = r.offset + done;
    let got: number;
    try {
      got = await new Promise<number>((resolve, reject) => {
        const cb = (err: NodeJS.ErrnoException | null, n: number) => (err ? reject(err) : resolve(n));
        if (views.length === 1) fs.read(fd, views[0]!, 0, views[0]!.length, pos, cb);
        else fs.readv(fd, views, pos, cb);
      });
    } catch (e) {
      throw fsError(e, r.path);
    }
    c.stats.reads++;
    if (got === 0) throw shortRead(c, w, r, done, fd);
    done += got;
    c.stats.copied += got;
    consume(views, got);
  }
}

/** Drops the first `got` bytes from the buffers of a scatter read (in place). */
function consume(views: Buffer[], got: number): void {
  while (got > 0) {
    const v = views[0]!;
    if (got >= v.length) {
      got -= v.length;
      views.shift();
    } else {
      views[0] = v.subarray(got);
      got = 0;
    }
  }
}

/** The error for a read of `r` that ended at its byte `k`: the data (or the image holding an extent) is too short. */
function shortRead(c: ExecContext, w: CopyWindow, r: PlannedRead, k: number, fd: number): DmiError {
  const bs = c.names.blockBytes;
  const dblock = Math.floor((r.dataPos + k) / bs);
  let vpos = w.outPos;
  for (let i = 0, cum = 0; i < r.into.length; i++) {
    const [at, n] = r.into[i]!;
    if (k < cum + n) {
      vpos = w.outPos + at + (k - cum);
      break;
    }
    cum += n;
  }
  const vblock = Math.floor(vpos / bs);
  if (!c.names.extents) return pastEndError(c.names, dblock, vblock);
  // The extents say the block is there; the file holding it ends before it.
  let fileSize = '?';
  try {
    fileSize = String(fs.fstatSync(fd).size);
  } catch {
    // the size is informative only
  }
  return new DmiError(
    'BAD_INPUT',
    `${c.names.dataName}: data block ${dblock} (virtual block ${vblock} of ${c.names.deviceName}) is at byte ${r.offset + k} of ${r.path}, past its end (${fileSize} bytes): truncated image?`,
    { path: r.path, dataBlock: dblock, virtualBlock: vblock },
  );
}

function writeWindow(c: ExecContext, w: CopyWindow, base: number): void {
  const { o, outName } = c;
  for (const [at, n] of w.writes) {
    let done = 0;
    while (done < n) {
      let k: number;
      try {
        k = fs.writeSync(o.out, c.ring, base + at + done, n - done, w.outPos + at + done);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err?.code === 'ENOSPC')
          throw new DmiError(
            'IO',
            `${outName}: no space left on device (writing byte ${w.outPos + at + done} of ${o.size})`,
            { path: outName },
          );
        throw fsError(e, outName, 'write');
      }
      c.stats.writes++;
      if (k === 0)
        throw new DmiError('IO', `${outName}: write returned 0 at byte ${w.outPos + at + done}`, { path: outName });
      done += k;
    }
  }
}
