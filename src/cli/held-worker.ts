/**
 * The held reads' worker in the single-file Bun binary, which has no module files for a worker to import: the
 * binary's entry, started again as a worker thread (pool-source/held-read.ts `setHeldWorkerEntry`), serves the reads
 * with the task modules bundled in, found by the file URL each HeldTask names (`distModule(rel)`).
 */
import { serveHeldReads } from '../pool-source/held-read.js';

const TASK_MODULES: Record<string, () => Promise<Record<string, unknown>>> = {
  'audit/live.js': () => import('../audit/live.js'),
  'forensics/live.js': () => import('../forensics/live.js'),
  'model/container-usage.js': () => import('../model/container-usage.js'),
  'model/listing.js': () => import('../model/listing.js'),
  'recover/deleted.js': () => import('../recover/deleted.js'),
};

/** The table's entry for a task's module URL (…/dist/audit/live.js, file:///$bunfs/…/audit/live.js). */
export function taskModule(url: string): (() => Promise<Record<string, unknown>>) | null {
  const rel = Object.keys(TASK_MODULES).find((r) => url.endsWith(`/${r}`));
  return rel === undefined ? null : TASK_MODULES[rel]!;
}

/** The task module a HeldTask names, loaded; an unknown one is an error the worker sends back. */
export async function loadTaskModule(url: string): Promise<Record<string, unknown>> {
  const load = taskModule(url);
  if (load === null) throw new Error(`no held-read task module for ${url}`);
  return load();
}

export function serve(): void {
  serveHeldReads(loadTaskModule);
}
