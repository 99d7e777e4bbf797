/**
 * The pool source: the one place that says where a Docker root's thin pool is and opens it, read-only.
 *
 *   loop-lvm        `<root>/devicemapper/devicemapper/{metadata,data}` (Docker's sparse loop files)
 *   --metadata      a metadata file or device (a `_tmeta` copy, a dm.thinpooldev's metadata), with --data
 *   --image DISK…   an LVM thin pool inside disk images (direct-lvm): `_tmeta` / `_tdata` through LVM's extents
 *   live            a pool the kernel has active: read through a held metadata snapshot (live.ts, async)
 *
 * `locatePool` only decides (no pool is opened, nothing is read but Docker's naming): commands call it early so
 * a wrong option fails before any work. `openPoolSource` opens the metadata (`ThinPool`) and says where the data
 * is, with the names to show the user. Every command that reads a pool goes through here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveNaming, type NamingOptions } from '../docker/naming.js';
import { DmiError } from '../errors.js';
import type { Extent } from '../io/extents.js';
import { openPool, type ThinPool } from '../thin/index.js';
import type { LiveLocation } from './live.js';
import { locateLvmPool, openLvmPoolMetadata, type LvmLocateFinding, type LvmThinPool } from './lvm.js';
import { loopFiles } from './presence.js';

export { hasPool, loopFiles } from './presence.js';

export interface PoolSourceOptions extends NamingOptions {
  /** Disk images holding an LVM thin pool (direct-lvm). */
  images?: string[];
  /** Pool metadata file or device; default the root's loop-lvm file. */
  metadata?: string;
  /** Pool data file or device; default the root's loop-lvm file when it exists. */
  data?: string;
  /** Read the held metadata snapshot's trees. */
  metadataSnap?: boolean;
  /** A location decided already (a live pool held by the caller: live.ts): locatePool returns it as is. */
  location?: PoolLocation;
}

/** Where a pool is, decided but not opened. */
export type PoolLocation =
  | { kind: 'files'; metadata: string; data: string | null }
  | { kind: 'lvm'; images: string[]; /** dm name or vg/lv to look for; null: the only thin pool */ pool: string | null }
  /** Active in the kernel; opened only inside live.ts `withHeldSnapshot` (its trees are read from the held root). */
  | LiveLocation;

/** The data of an open pool: a file or device, or byte extents of disk images (LVM `_tdata`). */
export interface PoolData {
  path: string;
  extents?: Extent[];
  /** For messages: the path, or `disk.img: docker/thinpool_tdata`. */
  label: string;
}

export interface PoolSource {
  pool: ThinPool;
  location: PoolLocation;
  /** The metadata's name for messages and reports: the path, or `disk.img: vg/lv_tmeta`. */
  metadataFile: string;
  /** Null when the data file is absent (metadata alone can still be audited). */
  data: PoolData | null;
  lvm: LvmThinPool | null;
  /** What LVM's scan found wrong (direct-lvm), as findings. */
  lvmFindings: LvmLocateFinding[];
  close(): void;
}

function naming(rootDir: string, opts: NamingOptions): ReturnType<typeof resolveNaming> | null {
  if (!fs.existsSync(path.join(rootDir, 'devicemapper'))) return null;
  try {
    return resolveNaming(rootDir, opts);
  } catch {
    return null; // no usable root: the caller falls back (the only thin pool, or the plain message)
  }
}

/**
 * Decides where the pool is. `rootDir` is the Docker root (null: none was given, only --metadata or --image).
 * USAGE when nothing names a pool or options conflict; NOT_FOUND (saying what to pass) when the root has no
 * loop-lvm metadata.
 */
export function locatePool(rootDir: string | null, opts: PoolSourceOptions = {}): PoolLocation {
  if (opts.location) return opts.location;
  const images = (opts.images ?? []).map((i) => path.resolve(i));
  if (images.length > 0) {
    if (opts.metadata !== undefined || opts.data !== undefined) {
      throw new DmiError(
        'USAGE',
        '--image reads the pool from LVM inside the disk images: --metadata and --data do not apply',
      );
    }
    let pool = opts.pool ?? null;
    if (!pool && rootDir !== null) {
      const n = naming(rootDir, opts);
      if (n?.externalPool) pool = n.poolName;
    }
    return { kind: 'lvm', images, pool };
  }
  if (opts.metadata !== undefined) {
    const data = opts.data ?? (rootDir !== null ? loopFiles(rootDir).data : undefined);
    return {
      kind: 'files',
      metadata: path.resolve(opts.metadata),
      data: data !== undefined && (opts.data !== undefined || fs.existsSync(data)) ? path.resolve(data) : null,
    };
  }
  if (rootDir === null) {
    throw new DmiError(
      'USAGE',
      'name the pool metadata with --metadata FILE, the disk images of a direct-lvm host with --image, or a Docker root with --root',
    );
  }
  const files = loopFiles(rootDir);
  if (!fs.existsSync(files.metadata)) {
    const n = naming(rootDir, opts);
    const why = !n?.externalPool
      ? 'a direct-lvm or external pool keeps it in an LV'
      : n.poolNameSource === 'direct-lvm'
        ? 'devicemapper/setup-config.json shows a direct-lvm setup'
        : `the pool ${n.poolName} is external (${n.poolNameSource === 'option' ? '--pool' : 'dm.thinpooldev'})`;
    throw new DmiError(
      'NOT_FOUND',
      `${files.metadata}: no loop-lvm pool metadata — ${why}: pass --image <disk image> (repeatable) for the disk(s) holding the LVM thin pool, or --metadata <tmeta device or file> (and --data)`,
      { path: files.metadata },
    );
  }
  const data = opts.data !== undefined ? path.resolve(opts.data) : fs.existsSync(files.data) ? files.data : null;
  return { kind: 'files', metadata: files.metadata, data };
}

/** Metadata errors name the block; the user also needs the file. */
export function namingFile(e: unknown, file: string): unknown {
  if (e instanceof DmiError && !e.message.includes(file))
    return new DmiError(e.code, `${file}: ${e.message}`, { ...(e.details ?? {}), path: file }, { cause: e });
  return e;
}

/**
 * Opens the located pool's metadata read-only. `requireData`: the data must be readable too (export): NOT_FOUND
 * when the data file is missing, BAD_INPUT when an LVM data LV cannot be mapped in the images.
 */
export function openPoolSource(
  loc: PoolLocation,
  opts: { metadataSnap?: boolean; requireData?: boolean } = {},
): PoolSource {
  if (loc.kind === 'lvm') {
    const { pool: lvm, findings } = locateLvmPool(loc.images, { pool: loc.pool });
    const label = lvm.metadata?.label ?? `${lvm.vg}/${lvm.metadataLv}`;
    if (opts.requireData && !lvm.data) {
      const why = findings
        .filter((f) => f.severity !== 'info')
        .map((f) => f.message)
        .join('; ');
      throw new DmiError(
        'BAD_INPUT',
        `${lvm.vg}/${lvm.dataLv}: the thin pool's data LV cannot be read from ${loc.images.join(', ')}${why ? `: ${why}` : ''}`,
      );
    }
    let pool: ThinPool;
    try {
      pool = openLvmPoolMetadata(lvm, { metadataSnap: opts.metadataSnap });
    } catch (e) {
      throw namingFile(e, label);
    }
    const data = lvm.data ? { path: lvm.data.path, extents: lvm.data.extents, label: lvm.data.label } : null;
    return { pool, location: loc, metadataFile: label, data, lvm, lvmFindings: findings, close: () => pool.close() };
  }
  if (loc.kind === 'live') {
    // The held snapshot's trees: the caller holds it (live.ts withHeldSnapshot).
    return openFileSource(loc, opts.metadataSnap ?? true);
  }
  if (opts.requireData) {
    if (!fs.existsSync(loc.metadata)) {
      throw new DmiError(
        'NOT_FOUND',
        `${loc.metadata}: no pool metadata file (a direct-lvm pool keeps metadata and data on LVM volumes: pass --image <disk image>, or --metadata and --data)`,
        { path: loc.metadata },
      );
    }
    if (loc.data === null || !fs.existsSync(loc.data)) {
      const p = loc.data ?? path.join(path.dirname(loc.metadata), 'data');
      throw new DmiError('NOT_FOUND', `${p}: no pool data file (pass --data, or --image for a direct-lvm pool)`, {
        path: p,
      });
    }
  }
  return openFileSource(loc, opts.metadataSnap ?? false);
}

/** A pool whose metadata and data are files or devices (loop-lvm, --metadata/--data, or a live pool's devices). */
function openFileSource(loc: Extract<PoolLocation, { kind: 'files' | 'live' }>, metadataSnap: boolean): PoolSource {
  let pool: ThinPool;
  try {
    pool = openPool(loc.metadata, { metadataSnap });
  } catch (e) {
    throw namingFile(e, loc.metadata);
  }
  const data = loc.data !== null ? { path: loc.data, label: loc.data } : null;
  return {
    pool,
    location: loc,
    metadataFile: loc.metadata,
    data,
    lvm: null,
    lvmFindings: [],
    close: () => pool.close(),
  };
}

/** The files a read or export must never write: the pool's metadata, data and disk images. */
export function evidenceFiles(loc: PoolLocation): string[] {
  return loc.kind === 'lvm' ? loc.images : [loc.metadata, ...(loc.data !== null ? [loc.data] : [])]; // live: the same two
}

/** Runs `fn` on the opened pool and closes it; errors name the metadata file. */
export function withPool<T>(
  loc: PoolLocation,
  opts: { metadataSnap?: boolean; requireData?: boolean },
  fn: (src: PoolSource) => T,
): T {
  const src = openPoolSource(loc, opts);
  try {
    return fn(src);
  } catch (e) {
    throw namingFile(e, src.metadataFile);
  } finally {
    src.close();
  }
}

/** The dminspect options that name this pool again (for printed commands: `--dry-run`). */
export function poolSourceArgs(loc: PoolLocation): string[] {
  if (loc.kind === 'lvm')
    return [...loc.images.flatMap((i) => ['--image', i]), ...(loc.pool ? ['--pool', loc.pool] : [])];
  if (loc.kind === 'live') return ['--pool', loc.pool];
  return ['--metadata', loc.metadata, ...(loc.data !== null ? ['--data', loc.data] : [])];
}
