/**
 * node:worker_threads, loaded at its first use. Only a few runs start a thread (a large pool's walk, a held read, a
 * large export's hash), and loading the module costs every run that imports it about 120 page faults and 7–10 ms on
 * the development VM (`node -e "require('node:worker_threads')"` against `node -e 0`; issue 15): a pool audit of a
 * 5M-mapping pool walks in one thread and never needs it.
 */
import type * as WorkerThreads from 'node:worker_threads';

let loaded: typeof WorkerThreads | null = null;

export function workerThreads(): typeof WorkerThreads {
  loaded ??= process.getBuiltinModule('node:worker_threads');
  return loaded;
}
