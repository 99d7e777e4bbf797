/**
 * Whether a Docker root has a pool to read, decided from options, names and a stat or two: no pool reader, no
 * process, nothing opened. A command that adds pool usage to a Docker view (`container`, `devices`) asks this
 * first and loads the readers (thin/, lvm/, live.ts) only when the answer is yes (issue 15, start-up).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveNaming } from '../docker/naming.js';
import type { PoolSourceOptions } from './index.js';

/** The loop-lvm files of a Docker root (`devicemapper/devicemapper/{metadata,data}`). */
export function loopFiles(root: string): { metadata: string; data: string } {
  const dir = path.join(root, 'devicemapper', 'devicemapper');
  return { metadata: path.join(dir, 'metadata'), data: path.join(dir, 'data') };
}

/** True when `locatePool` would find a pool without failing (a root without loop files and no options: false). */
export function hasPool(rootDir: string, opts: PoolSourceOptions = {}): boolean {
  return (
    opts.location !== undefined ||
    opts.metadata !== undefined ||
    (opts.images?.length ?? 0) > 0 ||
    fs.existsSync(loopFiles(rootDir).metadata)
  );
}

/** What decides whether a root's pool is read live. */
export interface LiveChoice {
  pool?: string | undefined;
  daemonConfig?: string | null | undefined;
  metadata?: string | undefined;
  images?: string[] | undefined;
  /** false: read the files as they lie on disk (`--no-live`). */
  live?: boolean | undefined;
  stepTimeoutMs?: number | undefined;
  sysfs?: string | undefined;
  log?: ((line: string) => void) | undefined;
}

/**
 * The pool the live path would ask the kernel about: `--pool`, or the root's (naming); null when the options
 * name files (`--metadata`, `--image`), `--no-live`, or nothing names a pool.
 */
export function livePoolName(rootDir: string | null, opts: LiveChoice): string | null {
  if (opts.live === false || opts.metadata !== undefined || (opts.images?.length ?? 0) > 0) return null;
  if (opts.pool) return opts.pool.replace(/^\/dev\/mapper\//, '');
  if (rootDir === null || !fs.existsSync(path.join(rootDir, 'devicemapper'))) return null;
  try {
    return resolveNaming(rootDir, opts).poolName;
  } catch {
    return null;
  }
}

/**
 * Whether reading the root's pool usage can find anything: a pool the kernel may have active (`livePoolName`
 * names one and the kernel has device-mapper: live.ts `locateRootLive` asks no further otherwise), or pool files
 * (`hasPool`). False: the usage read would find no pool and leave the view as it is.
 */
export function poolMayBeRead(
  rootDir: string,
  opts: PoolSourceOptions & LiveChoice,
  host: { hasDeviceMapper(): boolean },
): boolean {
  return hasPool(rootDir, opts) || (livePoolName(rootDir, opts) !== null && host.hasDeviceMapper());
}
