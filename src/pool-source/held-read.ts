/**
 * The held read off the main thread: the metadata read (synchronous, block by block) runs in a worker thread, so
 * this thread's event loop stays free for the read's timeout and for SIGINT/SIGTERM, which release the hold while
 * the read is still going (live.ts `withHeldSnapshot`). A read that overruns is abandoned: the worker is told to
 * stop (`terminate()`, which also ends a read stuck between blocks) and unref'd, so a read stuck in the kernel
 * cannot keep the process from exiting once the hold is released. A worker that answered is kept, idle and
 * unref'd, for the next read in the same process (its modules stay loaded).
 *
 * The worker runs `fn` exported by the ES module at `module` (a file URL), as `fn(...args, view)`; arguments and the
 * result cross by structured clone (plain data: the reports are JSON anyway). A DmiError crosses as its code,
 * message and details. Where no worker can load that module (the sources run through a TypeScript loader — the
 * unit tests), the read runs on this thread as before: `heldTaskRunsInWorker` says which.
 *
 * The single-file Bun binary has no module files: there the worker is the binary's own entry run again
 * (`bin/dminspect.js` names itself with `setHeldWorkerEntry`, and in a worker thread it serves the reads through
 * `serveHeldReads` with a table of the task modules bundled in: `cli/held-worker.ts`). Both workers run the same
 * loop (`serveHeldJobs`).
 */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { DmiError, type ErrorCode } from '../errors.js';
import { workerThreads } from '../util/threads.js';

/** A read to run in a worker: `fn` exported by the ES module at the file URL `module`, called as fn(...args, view). */
export interface HeldTask {
  module: string;
  fn: string;
  args: unknown[];
}

/** What the worker posts back. */
type Reply =
  | { ok: true; value: unknown }
  | { ok: false; error: { dmi: boolean; code?: ErrorCode; message: string; details?: Record<string, unknown> } };

/** The task modules, by the file URL a HeldTask names. */
export type HeldModuleLoader = (module: string) => Promise<Record<string, unknown>>;

/** The part of a worker's parentPort the loop uses. */
interface JobPort {
  on(event: 'message', listener: (job: HeldJob) => void): unknown;
  postMessage(reply: Reply & { id: number }): void;
}

interface HeldJob extends HeldTask {
  id: number;
  view: unknown;
  delayMs: number;
}

/**
 * A worker's loop: one read at a time, and the worker stays for the next (its modules stay loaded: a process that
 * reads many times, like the kernel suite's, pays the loading once). `delayMs`: the test hook. Self-contained (it
 * names nothing outside itself): its source text is the Node worker's code.
 */
export function serveHeldJobs(port: JobPort, load: HeldModuleLoader): void {
  port.on('message', async (job: HeldJob) => {
    try {
      if (job.delayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, job.delayMs);
      const m = await load(job.module);
      const fn = m[job.fn];
      if (typeof fn !== 'function') throw new Error(`${job.module} has no function ${job.fn}`);
      const value: unknown = await (fn as (...a: unknown[]) => unknown)(...job.args, job.view);
      port.postMessage({ id: job.id, ok: true, value });
    } catch (e) {
      const x = e as { name?: unknown; code?: unknown; message?: unknown; details?: Record<string, unknown> } | null;
      const dmi = !!x && x.name === 'DmiError' && typeof x.code === 'string';
      port.postMessage({
        id: job.id,
        ok: false,
        error: {
          dmi,
          code: dmi ? (x.code as ErrorCode) : undefined,
          message: x && x.message ? String(x.message) : String(e),
          details: dmi ? x.details : undefined,
        },
      });
    }
  });
}

/** Node's worker: CommonJS, evaluated (nothing to find on disk or in the bundle), importing the task's module file. */
const WORKER_SOURCE = `(${serveHeldJobs.toString()})(require('node:worker_threads').parentPort, (m) => import(m));`;

/** Under Bun: the binary's entry (set by bin/dminspect.js), which serves held reads when run as a worker. */
let bunEntry: string | null = null;

/** Names the entry that, started as a worker thread, serves held reads (the Bun binary's: bin/dminspect.js). */
export function setHeldWorkerEntry(entry: string): void {
  bunEntry = entry;
}

/** In a worker started on the entry: serve held reads, loading each task's module with `load`. */
export function serveHeldReads(load: HeldModuleLoader): void {
  const { parentPort } = workerThreads();
  if (parentPort === null) throw new Error('serveHeldReads: not in a worker thread');
  serveHeldJobs(parentPort as unknown as JobPort, load);
}

function newWorker(): Worker {
  const { Worker } = workerThreads();
  if (process.versions.bun !== undefined && bunEntry !== null) return new Worker(bunEntry);
  return new Worker(WORKER_SOURCE, { eval: true });
}

/** The idle worker kept for the next read (unref'd: it never keeps the process alive), or null. */
let idle: Worker | null = null;
let nextJob = 1;

/**
 * The file URL of the tsc-built module `rel` (e.g. `audit/live.js`) under `dist/`, for a HeldTask. `bin/dminspect.js`
 * runs the esbuild bundle (`dist/bundle/`), whose files are chunks that neither keep a module's name nor export what
 * only that chunk uses, so a task names the per-module build beside it: one directory up from this module in either
 * build (`dist/pool-source/held-read.js`, `dist/bundle/chunk-*.js`). Under the TypeScript sources (the unit tests) the
 * `.js` file does not exist and the task runs on this thread.
 */
export function distModule(rel: string): string {
  return new URL(`../${rel}`, import.meta.url).href;
}

/**
 * Whether `task` can run in a worker here (a built `.js` module under Node; under Bun, an entry that serves held
 * reads), else it runs on this thread.
 */
export function heldTaskRunsInWorker(task: HeldTask): boolean {
  if (process.versions.bun !== undefined) return bunEntry !== null;
  if (!task.module.startsWith('file:') || !task.module.endsWith('.js')) return false;
  try {
    return fs.statSync(fileURLToPath(task.module)).isFile();
  } catch {
    return false;
  }
}

/** A read in flight in a worker: its result, and how to abandon it. */
export interface WorkerRead<T> {
  result: Promise<T>;
  /** Stops the worker (a read stuck in a system call ends when the call returns) and lets the process exit. */
  abandon(): void;
}

/** Starts `task` in a worker with `view` as its last argument. `delayMs`: wait that long before reading (tests). */
export function startWorkerRead<T>(task: HeldTask, view: unknown, delayMs = 0): WorkerRead<T> {
  const worker = idle ?? newWorker();
  idle = null;
  worker.ref(); // a read in flight keeps the process alive
  const id = nextJob++;
  let settled = false;
  let onMessage: (m: Reply & { id: number }) => void = () => {};
  let onError: (e: Error) => void = () => {};
  let onExit: (code: number) => void = () => {};
  const detach = (): void => {
    worker.off('message', onMessage);
    worker.off('error', onError);
    worker.off('exit', onExit);
  };
  const result = new Promise<T>((resolve, reject) => {
    onMessage = (m) => {
      if (m.id !== id) return;
      settled = true;
      detach();
      worker.unref();
      if (idle === null) idle = worker;
      else void worker.terminate();
      if (m.ok) resolve(m.value as T);
      else if (m.error.dmi && m.error.code) reject(new DmiError(m.error.code, m.error.message, m.error.details));
      else reject(new Error(m.error.message));
    };
    onError = (e) => {
      settled = true;
      detach();
      reject(e);
    };
    onExit = (code) => {
      detach();
      if (!settled) reject(new DmiError('IO', `the metadata read's worker thread exited (${code}) without an answer`));
      settled = true;
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
  worker.postMessage({ id, module: task.module, fn: task.fn, args: task.args, view, delayMs });
  return {
    result,
    abandon: () => {
      if (settled) return;
      settled = true;
      detach();
      worker.unref();
      void worker.terminate();
    },
  };
}
