/**
 * Per-device exclusive counts over the two-level mapping tree, as thin_ls defines them: a mapping
 * (device, virtual block) is exclusive when its data block is mapped by exactly one
 * (device, virtual block) pair in the whole pool.
 *
 * One pass, each node read once. For every data block an owner word: 0 = unmapped, leaf block + 1 =
 * mapped once (by that leaf), SHARED = mapped two or more times. A leaf's exclusive count is how many
 * of its data blocks it still owns. A node reached again (a subtree shared between devices, as the
 * kernel makes on snapshot) is marked shared with all its descendants, once: its leaves give up what
 * they own. Counts saturate at "two", so no per-mapping memory is needed.
 *
 * The walk itself is `usageKernel` (usage-kernel.ts). On large pools it runs in two threads: this one and a worker
 * thread (evaluated from the kernel's source text, as io/copy-executor.ts does for SHA-256, so it also runs in the
 * single-file binary). Both claim batches of devices from a shared counter, each with its own owner words and
 * leaf counts; a node both reach is walked by both. Then this thread merges: a data block mapped in both threads
 * is shared, and the leaves that owned it give it up. The first problem (lowest batch) becomes the one-line error,
 * its message made by the ordinary readers (verifyBlock, decodeNodeHeader, BlockSource) where they have one.
 */
import * as fs from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { DmiError, fsError } from '../errors.js';
import { nativeCrcPath, crc32cFunction, sliceBy8 } from '../util/crc32c.js';
import { workerThreads } from '../util/threads.js';
import { decodeNodeHeader, MAX_DEPTH, nodeName } from './btree.js';
import { KERNEL_ERROR, usageKernel, type KernelArgs } from './usage-kernel.js';

const PAGE = 65536;
const SHARED_NODE = 4;
/** Worker states in ctl[1]. */
const W_IDLE = 0;
const W_RUNNING = 1;
const W_DONE = 2;
const W_FAILED = 3;
const W_CANCELLED = 4;
/** Owner words for more data blocks than this are not put in shared memory: the walk then stays on one thread. */
const MAX_SHARED_OWNER_BYTES = 1024 ** 3;
/**
 * Pages of owner words made up front, as views of one zero-filled buffer (whose memory is only touched where blocks
 * are mapped), for data devices up to 2^26 blocks (4 TiB of 64 KiB blocks: 128 MiB of 16-bit words, reserved, not
 * touched); pages past it, which only a hostile or enormous pool has, are made as the walk reaches them.
 */
const MAX_UPFRONT_PAGES = 1024;

export interface UsageWalkInput {
  /** Reads a checksum-verified btree node (canonical errors); used to word the kernel's problems. */
  readNode: (n: number, what: string) => Buffer;
  /** Reads block `n` as stored (throws the source's own error past the end or on a short file). */
  readRaw: (n: number) => Buffer;
  /** The metadata's bytes: file ranges in order with open descriptors, and the byte offset of block 0. */
  source: { base: number; ranges: ReadonlyArray<{ fd: number; path: string; offset: number; length: number }> };
  /** Whole blocks the source holds. */
  nrBlocks: number;
  metadataBlocks: number;
  dataNrBlocks: number;
  /** Top-level entries in key order: device id and bottom-tree root. */
  devices: ReadonlyArray<{ devId: number; root: number }>;
  /** 2: walk in this thread and a worker thread; 1 (default): this thread only. */
  threads?: 1 | 2;
  /** Test hook: with 2 threads, leave every device to the worker (its results and errors are then the only ones). */
  workerOnly?: boolean;
}

export interface UsageWalkResult {
  /** Exclusive mappings per device id. */
  exclusive: Map<number, number>;
  /** Mappings counted, (device, virtual block) pairs. */
  mappings: number;
  /** Distinct data blocks mapped. */
  dataBlocks: number;
  /** Distinct bottom-tree nodes read. */
  nodes: number;
  /** Nodes reached more than once (shared subtrees). */
  sharedNodes: number;
  /** Whether a worker thread took part. */
  worker: boolean;
  /** Per metadata block, non-zero where a thread read and verified it as a btree node (one array per thread). */
  walked: Uint8Array[];
  /** One past the highest block non-zero in any `walked` array (0: none). */
  walkedEnd: number;
  reads: number;
  bytesRead: number;
}

/** One thread's outputs. */
interface Side {
  state: Uint8Array;
  exclusive: Int32Array;
  stats: Float64Array;
  err: Float64Array;
  touched: Uint8Array;
}

function side(metadataBlocks: number, devices: number, nPages: number, shared: boolean): Side {
  const mem = (n: number) => (shared ? new SharedArrayBuffer(n) : new ArrayBuffer(n));
  return {
    state: new Uint8Array(mem(metadataBlocks)),
    exclusive: new Int32Array(mem(4 * devices)),
    stats: new Float64Array(mem(8 * 16)),
    err: new Float64Array(mem(8 * 8)),
    touched: new Uint8Array(mem(nPages)),
  };
}

/** The page table of one thread: `upfront` pages as views of `store` (zero-filled), the rest left to newPage. */
function pageTable(
  store: ArrayBufferLike,
  nPages: number,
  upfront: number,
  wide: boolean,
): (Uint16Array | Uint32Array | undefined)[] {
  const pages: (Uint16Array | Uint32Array | undefined)[] = new Array(Math.min(nPages, 1 << 20));
  pages.fill(undefined);
  for (let p = 0; p < upfront; p++)
    pages[p] = wide ? new Uint32Array(store, p * PAGE * 4, PAGE) : new Uint16Array(store, p * PAGE * 2, PAGE);
  return pages;
}

/** The worker's code (CommonJS, evaluated): the kernel, from its source text, over the shared outputs. */
function workerSource(): string {
  return `
const { workerData: d } = require('node:worker_threads');
const fs = require('node:fs');
const ctl = new Int32Array(d.ctl);
if (Atomics.compareExchange(ctl, 1, ${W_IDLE}, ${W_RUNNING}) === ${W_IDLE}) {
  const err = new Float64Array(d.err);
  try {
    const kernel = (${usageKernel.toString()});
    const crc = d.crcPath ? ((m) => (b) => m.crc32c(b))(require(d.crcPath)) : (${sliceBy8.toString()})(0x82f63b78);
    const wide = d.shared !== 0xffff;
    const store = wide ? new Uint32Array(d.pages) : new Uint16Array(d.pages);
    const pages = new Array(Math.min(d.nPages, 1 << 20)).fill(undefined);
    for (let p = 0; p < d.nPages; p++) pages[p] = store.subarray(p * ${PAGE}, (p + 1) * ${PAGE});
    kernel({
      pread: (e, buf, off, len, pos) => {
        try {
          return fs.readSync(d.fds[e], buf, off, len, pos);
        } catch (x) {
          if (x && typeof x === 'object') x.extent = e;
          throw x;
        }
      },
      crc,
      extents: new Float64Array(d.extents),
      base: d.base,
      nrBlocks: d.nrBlocks,
      metadataBlocks: d.metadataBlocks,
      dataNrBlocks: d.dataNrBlocks,
      roots: new Float64Array(d.roots),
      ctl,
      nBatches: d.nBatches,
      batchSize: d.batchSize,
      state: new Uint8Array(d.state),
      exclusive: new Int32Array(d.exclusive),
      shared: d.shared,
      pages,
      newPage: (p) => store.subarray(p * ${PAGE}, (p + 1) * ${PAGE}),
      touched: new Uint8Array(d.touched),
      stats: new Float64Array(d.stats),
      err,
    });
    Atomics.store(ctl, 1, ${W_DONE});
  } catch (x) {
    if (!(err[0] > 0)) {
      const text = JSON.stringify({ message: String((x && x.message) || x), code: x && x.code, extent: x && x.extent });
      const bytes = new TextEncoder().encode(text.slice(0, 4000));
      const out = new Uint8Array(d.text);
      out.set(bytes.subarray(0, out.length - 4), 4);
      new Int32Array(d.text, 0, 1)[0] = Math.min(bytes.length, out.length - 4);
    }
    Atomics.store(ctl, 1, ${W_FAILED});
  }
  Atomics.notify(ctl, 1);
}
`;
}

let workerCode: string | null = null;

export function countExclusive(input: UsageWalkInput): UsageWalkResult {
  return startUsageWalk(input).finish();
}

/** A usage walk whose worker thread (if any) is already starting: `finish` walks here too, waits, and merges. */
export interface UsageWalk {
  finish: () => UsageWalkResult;
  /** Stops the worker thread (before `finish`, when the caller gives up). */
  abort: () => void;
}

/**
 * Starts the walk: the worker thread, if one is used, begins booting now, so the caller can do other reads (the
 * device details) meanwhile; `finish` does this thread's share.
 */
export function startUsageWalk(input: UsageWalkInput): UsageWalk {
  const { metadataBlocks, dataNrBlocks, devices, source } = input;
  const nPages = Math.ceil(dataNrBlocks / PAGE);
  const wide = devices.length >= 0xffff;
  const SHARED = wide ? 0xffffffff : 0xffff;
  const wordBytes = wide ? 4 : 2;
  const useWorker = input.threads === 2 && devices.length >= 2 && nPages * PAGE * wordBytes <= MAX_SHARED_OWNER_BYTES;
  const nBatches = useWorker ? Math.min(devices.length, 128) : 1;
  const batchSize = Math.max(1, Math.ceil(devices.length / nBatches));
  const roots = Float64Array.from(devices, (d) => d.root);
  const extents = new Float64Array(source.ranges.length * 2);
  source.ranges.forEach((r, i) => {
    extents[2 * i] = r.offset;
    extents[2 * i + 1] = r.length;
  });
  const ctl = new Int32Array(useWorker ? new SharedArrayBuffer(16) : new ArrayBuffer(16));
  const common = {
    extents,
    base: source.base,
    nrBlocks: input.nrBlocks,
    metadataBlocks,
    dataNrBlocks,
    roots,
    ctl,
    nBatches,
    batchSize,
    shared: SHARED,
  };

  let w: WorkerSide | null = null;
  if (useWorker) {
    const shared = side(metadataBlocks, devices.length, nPages, true);
    const pages = new SharedArrayBuffer(nPages * PAGE * wordBytes);
    const text = new SharedArrayBuffer(4096);
    workerCode ??= workerSource();
    let worker: Worker | null = null;
    try {
      worker = new (workerThreads().Worker)(workerCode, {
        eval: true,
        workerData: {
          ...common,
          extents: extents.buffer,
          roots: roots.buffer,
          ctl: ctl.buffer,
          nPages,
          fds: source.ranges.map((r) => r.fd),
          crcPath: nativeCrcPath(),
          state: shared.state.buffer,
          exclusive: shared.exclusive.buffer,
          stats: shared.stats.buffer,
          err: shared.err.buffer,
          touched: shared.touched.buffer,
          pages,
          text,
        },
      });
    } catch {
      // No thread to be had (EAGAIN, limits): this thread walks alone.
    }
    if (worker) {
      w = { ...shared, pages, text };
      worker.unref();
      // Reported through ctl and err; a worker that fails to start leaves its batches to this thread.
      worker.on('error', () => {});
    }
  }

  const abort = (): void => {
    Atomics.store(ctl, 2, 1);
    if (w) Atomics.compareExchange(ctl, 1, W_IDLE, W_CANCELLED);
  };
  return { finish: () => finishWalk(input, common, w, nPages, wide), abort };
}

type WorkerSide = Side & { pages: SharedArrayBuffer; text: SharedArrayBuffer };

function finishWalk(
  input: UsageWalkInput,
  common: Omit<KernelArgs, 'pread' | 'crc' | 'state' | 'exclusive' | 'pages' | 'newPage' | 'touched' | 'stats' | 'err'>,
  w: WorkerSide | null,
  nPages: number,
  wide: boolean,
): UsageWalkResult {
  const { metadataBlocks, devices, source } = input;
  const { ctl, shared: SHARED } = common;
  const m = side(metadataBlocks, devices.length, nPages, false);
  let upfront = Math.min(nPages, MAX_UPFRONT_PAGES);
  let store: ArrayBuffer;
  try {
    store = new ArrayBuffer(upfront * PAGE * (wide ? 4 : 2));
  } catch {
    // No room to reserve it (a limit on address space): every page is made at its first use.
    upfront = 0;
    store = new ArrayBuffer(0);
  }
  const mPages = pageTable(store, nPages, upfront, wide);
  let mainError: unknown = null;
  try {
    if (!(w && input.workerOnly))
      usageKernel({
        ...common,
        pread: (e, buf, off, len, pos) => {
          try {
            return fs.readSync(source.ranges[e]!.fd, buf, off, len, pos);
          } catch (x) {
            throw fsError(x, source.ranges[e]!.path);
          }
        },
        crc: crc32cFunction(),
        state: m.state,
        exclusive: m.exclusive,
        pages: mPages,
        newPage: () => (wide ? new Uint32Array(PAGE) : new Uint16Array(PAGE)),
        touched: m.touched,
        stats: m.stats,
        err: m.err,
      });
  } catch (e) {
    mainError = e;
    Atomics.store(ctl, 2, 1);
  }

  let workerRan = false;
  if (w && (input.workerOnly || Atomics.compareExchange(ctl, 1, W_IDLE, W_CANCELLED) !== W_IDLE)) {
    workerRan = true;
    const t0 = Date.now();
    for (let state = Atomics.load(ctl, 1); state === W_RUNNING || state === W_IDLE; state = Atomics.load(ctl, 1)) {
      Atomics.wait(ctl, 1, state, 1000);
      if (state === W_IDLE && Date.now() - t0 > 60 * 1000)
        throw new DmiError('IO', 'the usage walk worker thread did not start in 60 s');
      if (Date.now() - t0 > 30 * 60 * 1000)
        throw new DmiError('IO', 'the usage walk worker thread did not finish in 30 minutes');
    }
  }
  const workerFailed = workerRan && Atomics.load(ctl, 1) === W_FAILED;
  if (mainError !== null && (!workerFailed || m.stats[6]! <= w!.stats[6]!)) throw explain(input, m, mainError);
  if (workerFailed) throw explain(input, w!, workerThrown(w!.text, source.ranges));

  const walked = [m.state];
  let walkedEnd = m.stats[8]!;
  let [nodes, sharedNodes, mappings, dataBlocks, reads, bytesRead] = [0, 1, 2, 3, 4, 5].map((i) => m.stats[i]!) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (w && workerRan) {
    walked.push(w.state);
    const store = wide ? new Uint32Array(w.pages) : new Uint16Array(w.pages);
    for (let p = 0; p < nPages; p++) {
      if (w.touched[p] === 0) continue;
      const wp = store.subarray(p * PAGE, (p + 1) * PAGE);
      const mp = mPages[p];
      for (let x = 0; x < PAGE; x++) {
        const b = wp[x]!;
        if (b === 0) continue;
        const a = mp === undefined ? 0 : mp[x]!;
        if (a === 0) {
          dataBlocks++;
          continue;
        }
        if (a !== SHARED) m.exclusive[a - 1]!--;
        if (b !== SHARED) w.exclusive[b - 1]!--;
      }
    }
    nodes = 0;
    sharedNodes = 0;
    walkedEnd = Math.max(walkedEnd, w.stats[8]!);
    for (let b = 0; b < walkedEnd; b++) {
      const x = m.state[b]!;
      const y = w.state[b]!;
      if (x === 0 && y === 0) continue;
      nodes++;
      if (x === SHARED_NODE || y === SHARED_NODE || (x !== 0 && y !== 0)) sharedNodes++;
    }
    mappings += w.stats[2]!;
    reads += w.stats[4]!;
    bytesRead += w.stats[5]!;
  }

  const exclusive = new Map<number, number>();
  for (let di = 0; di < devices.length; di++)
    exclusive.set(devices[di]!.devId, m.exclusive[di]! + (w && workerRan ? w.exclusive[di]! : 0));
  return {
    exclusive,
    mappings,
    dataBlocks,
    nodes,
    sharedNodes,
    worker: workerRan,
    walked,
    walkedEnd,
    reads,
    bytesRead,
  };
}

/** What the worker threw that was not a kernel problem (an I/O error), as an Error with its errno. */
function workerThrown(text: SharedArrayBuffer, ranges: UsageWalkInput['source']['ranges']): unknown {
  const n = new Int32Array(text, 0, 1)[0]!;
  let parsed: { message?: string; code?: string; extent?: number } = {};
  try {
    parsed = JSON.parse(new TextDecoder().decode(new Uint8Array(text, 4, n))) as typeof parsed;
  } catch {
    parsed = { message: 'no report' };
  }
  const e = Object.assign(new Error(parsed.message ?? 'unknown'), parsed.code ? { code: parsed.code } : {});
  const path = parsed.extent !== undefined ? ranges[parsed.extent]?.path : undefined;
  if (path !== undefined && parsed.code) return fsError(e, path);
  return new DmiError('IO', `the usage walk worker thread failed: ${e.message}`);
}

/** The one-line error for a thread's failure: the kernel's problem in `s.err`, or what it threw. */
function explain(input: UsageWalkInput, s: Side, thrown: unknown): unknown {
  const kind = s.err[0]!;
  if (!(kind > 0)) return thrown;
  const block = s.err[1]!;
  const parent = s.err[2]!;
  const dev = input.devices[s.stats[7]!];
  const what = `mapping tree of device ${dev?.devId ?? '?'}`;
  const at = { block };
  switch (kind) {
    case KERNEL_ERROR.VERIFY:
      input.readNode(block, what); // throws verifyBlock's message
      return new DmiError('BAD_INPUT', `${nodeName(block, what)}: checksum or block number mismatch`, at);
    case KERNEL_ERROR.HEADER:
      decodeNodeHeader(input.readNode(block, what), block, what, 8); // throws its message
      return new DmiError('BAD_INPUT', `${nodeName(block, what)}: bad node header`, at);
    case KERNEL_ERROR.KEY: {
      const [i, k, prev, lo, hi] = [s.err[3]!, s.err[4]!, s.err[5]!, s.err[6]!, s.err[7]!];
      const msg =
        k >= 2 ** 53
          ? `key ${i} is too large`
          : k <= prev
            ? `keys out of order (key ${i} = ${k} after ${prev})`
            : `key ${k} outside the range [${lo}, ${hi}) its parent gives it`;
      return new DmiError('BAD_INPUT', `${nodeName(block, what)}: ${msg}`, at);
    }
    case KERNEL_ERROR.DATA_PAST_END:
      return new DmiError(
        'BAD_INPUT',
        `${nodeName(block, what)}: virtual block ${s.err[3]} maps data block ${s.err[4]}, past the data device (${input.dataNrBlocks} blocks)`,
        at,
      );
    case KERNEL_ERROR.PAST_END: {
      const from = parent < 0 ? `top-level mapping tree: the root of the ${what}` : `${nodeName(parent, what)}: child`;
      return new DmiError(
        'BAD_INPUT',
        `${from} ${block} is past the end of the metadata (${input.metadataBlocks} blocks)`,
        { block: parent < 0 ? block : parent },
      );
    }
    case KERNEL_ERROR.CYCLE:
      return new DmiError('BAD_INPUT', `${nodeName(parent, what)}: child ${block} points back to an ancestor (cycle)`, {
        block: parent,
      });
    case KERNEL_ERROR.DEPTH:
      return new DmiError('BAD_INPUT', `${nodeName(block, what)}: tree deeper than ${MAX_DEPTH} levels`, at);
    case KERNEL_ERROR.TRUNCATED:
      input.readRaw(block); // throws the source's message
      return new DmiError('BAD_INPUT', `${nodeName(block, what)}: the metadata ends before this block`, at);
    default:
      return new DmiError('BAD_INPUT', `${what}: bad metadata (problem ${kind} at block ${block})`, at);
  }
}
