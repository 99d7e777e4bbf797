/**
 * The held read off the main thread: the metadata read (synchronous, block by block) runs in a worker thread, so
 * this thread's event loop stays free for the read's timeout and for SIGINT/SIGTERM, which release the hold while
 * the read is still going (live.ts `withHeldSnapshot`). A read that overruns is abandoned: the worker is told to
 * stop (`terminate()`, which also ends a read stuck between blocks) and unref'd, so a read stuck in the kernel
 * cannot keep the process from exiting once the hold is released.
 *
 * The worker runs `fn` exported by the ES module at `module` (a file URL), as `fn(...args, view)`; arguments and the
 * result cross by structured clone (plain data: the reports are JSON anyway). A DmiError crosses as its code,
 * message and details. Where no worker can load that module (the sources run through a TypeScript loader — the
 * unit tests —, or the single-file Bun binary, whose modules are not files), the read runs on this thread as
 * before: `heldTaskRunsInWorker` says which.
 */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DmiError, type ErrorCode } from '../errors.js';

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

/** The worker's code (CommonJS, evaluated: nothing to find on disk or bundle). `delayMs`: the test hook. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  try {
    if (workerData.delayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.delayMs);
    const m = await import(workerData.module);
    if (typeof m[workerData.fn] !== 'function') throw new Error(workerData.module + ' has no function ' + workerData.fn);
    const value = await m[workerData.fn](...workerData.args, workerData.view);
    parentPort.postMessage({ ok: true, value });
  } catch (e) {
    const dmi = !!e && e.name === 'DmiError' && typeof e.code === 'string';
    parentPort.postMessage({ ok: false, error: { dmi, code: dmi ? e.code : undefined,
      message: e && e.message ? e.message : String(e), details: dmi ? e.details : undefined } });
  }
})();
`;

/** Whether `task` can run in a worker here (a built `.js` module under Node), else it runs on this thread. */
export function heldTaskRunsInWorker(task: HeldTask): boolean {
  if (process.versions.bun !== undefined || !task.module.startsWith('file:') || !task.module.endsWith('.js'))
    return false;
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
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { module: task.module, fn: task.fn, args: task.args, view, delayMs },
  });
  let settled = false;
  const result = new Promise<T>((resolve, reject) => {
    worker.once('message', (m: Reply) => {
      settled = true;
      void worker.terminate();
      if (m.ok) resolve(m.value as T);
      else if (m.error.dmi && m.error.code) reject(new DmiError(m.error.code, m.error.message, m.error.details));
      else reject(new Error(m.error.message));
    });
    worker.once('error', (e) => {
      settled = true;
      reject(e);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new DmiError('IO', `the metadata read's worker thread exited (${code}) without an answer`));
    });
  });
  return {
    result,
    abandon: () => {
      if (settled) return;
      settled = true;
      worker.unref();
      void worker.terminate();
    },
  };
}
