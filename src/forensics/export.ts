/**
 * Offline export: a container's (or any Docker device record's) thin device written to an image file,
 * straight from the pool's metadata and data files, no device-mapper needed. The size comes from Docker's
 * record (the pool keeps none), the blocks from the mapping tree (thin/copy.ts). Evidence is opened
 * read-only and nothing is written under the Docker root; the output never replaces an existing file
 * without `force`, never an evidence file, and a failed export leaves no partial image behind.
 *
 * Direct-lvm (`images`): the pool is an LVM thin pool inside disk images; its metadata is read from the
 * `<pool>_tmeta` LV and its data from the `<pool>_tdata` LV, both through LVM's extents (lvm-pool.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { isDeviceHash } from '../docker/ids.js';
import type { NamingOptions } from '../docker/naming.js';
import type { DeviceRecord } from '../docker/records.js';
import { DockerRoot } from '../docker/root.js';
import { DmiError, fsError, isDmiError } from '../errors.js';
import {
  copyThinDevice,
  dropPrestartedHashWorker,
  HASH_WORKER_MIN_BYTES,
  prestartHashWorker,
  type CopyProgress,
} from '../thin/copy.js';
import { evidenceFiles, locatePool, openPoolSource, type PoolLocation } from '../pool-source/index.js';
import { containerDevice } from '../model/resolve.js';

export interface ExportTargetOptions extends NamingOptions {
  /** Export by thin id instead of a reference. */
  deviceId?: number;
  /** Image size in bytes; default: the Docker record's size. */
  size?: number;
  /** Pool files; default `<root>/devicemapper/devicemapper/{metadata,data}` (loop-lvm). */
  metadata?: string;
  data?: string;
  /** Direct-lvm: disk images holding the LVM thin pool (its _tmeta and _tdata are read through LVM's extents). */
  images?: string[];
}

export interface ExportTarget {
  deviceId: number;
  /** Docker device hash ("" for the base device), null when no record names the device. */
  hash: string | null;
  size: number;
  container: { id: string; name: string } | null;
  record: DeviceRecord | null;
  /** Where the pool is (loop files, --metadata/--data, or an LVM pool in disk images): pool-source. */
  pool: PoolLocation;
  /** The Docker root when one was read (the output may not go under it). */
  root: string | null;
}

export interface ExportOptions {
  metadataSnap?: boolean;
  /** Default true: unmapped blocks become holes. */
  sparse?: boolean;
  /** Overwrite an existing image file. */
  force?: boolean;
  bufferBytes?: number;
  onProgress?: (p: CopyProgress) => void;
  signal?: AbortSignal;
}

export interface ExportResult {
  image: string;
  size: number;
  sha256: string;
  device: { deviceId: number; hash: string | null };
  mappedBytes: number;
  copiedBytes: number;
  /** Unmapped stretches of the image. */
  holes: number;
  elapsedMs: number;
  holeBytes: number;
  sparse: boolean;
  container: { id: string; name: string } | null;
  metadata: string;
  data: string;
  metadataSnap: boolean;
  warnings: string[];
}

/**
 * What to export: `ref` is a container id, unique prefix or name, or a device hash (`<64 hex>`,
 * `<64 hex>-init`, `base`); or, with `deviceId`, a thin id whose size comes from the Docker record with that
 * device_id (or `size`). The Docker root is opened only when needed.
 */
export function resolveExportTarget(rootDir: string, ref: string | null, opts: ExportTargetOptions = {}): ExportTarget {
  const opened: { root: DockerRoot | null } = { root: null };
  const openRoot = (): DockerRoot => (opened.root ??= DockerRoot.open(rootDir));
  let record: DeviceRecord | null = null;
  let container: ExportTarget['container'] = null;
  let deviceId: number;

  if (ref !== null) {
    if (opts.deviceId !== undefined) throw new DmiError('USAGE', 'give a reference or --device-id, not both');
    const r = openRoot();
    try {
      const cd = containerDevice(r, ref, 'export');
      container = { id: cd.container.id, name: cd.container.name };
      record = cd.record;
    } catch (e) {
      if (!isDmiError(e) || e.code !== 'NOT_FOUND' || container !== null || !(isDeviceHash(ref) || ref === 'base'))
        throw e;
      record = r.deviceRecord(ref === 'base' ? '' : ref);
      if (!record) throw new DmiError('NOT_FOUND', `no container "${ref}" and no device record ${ref} in ${r.root}`);
    }
    deviceId = record.deviceId;
  } else {
    if (opts.deviceId === undefined)
      throw new DmiError('USAGE', 'name a container or device hash, or pass --device-id');
    deviceId = opts.deviceId;
    const needRoot =
      opts.size === undefined || (!opts.images?.length && (opts.metadata === undefined || opts.data === undefined));
    let records: DeviceRecord[] = [];
    try {
      records = openRoot()
        .recordSet()
        .devices.filter((d) => d.deviceId === deviceId);
    } catch (e) {
      if (needRoot || !isDmiError(e)) throw e;
    }
    if (records.length > 1 && opts.size === undefined && new Set(records.map((r) => r.size)).size > 1) {
      throw new DmiError(
        'AMBIGUOUS',
        `${records.length} Docker records have device_id ${deviceId} with different sizes (${records.map((r) => r.file).join(', ')}): pass --size`,
      );
    }
    record = records[0] ?? null;
    if (!record && opts.size === undefined) {
      throw new DmiError(
        'NOT_FOUND',
        `no Docker device record has device_id ${deviceId} in ${path.resolve(rootDir)}: pass --size BYTES`,
      );
    }
  }

  const size = opts.size ?? record!.size;
  if (size % 512 !== 0) {
    const where = opts.size !== undefined ? '--size' : record!.file;
    throw new DmiError(
      'BAD_INPUT',
      `${where}: size ${size} is not a multiple of 512`,
      record && opts.size === undefined ? { path: record.file } : undefined,
    );
  }
  const rootPath = opened.root?.root ?? null;
  const pool = locatePool(rootPath ?? path.resolve(rootDir), opts);
  return { deviceId, hash: record?.hash ?? null, size, container, record, pool, root: rootPath };
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

function realDir(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Refuses an output that would overwrite evidence, land under the Docker root, or replace a file without force. */
export function checkOutput(image: string, t: { root: string | null; pool: PoolLocation }, force: boolean): void {
  const dir = realDir(path.dirname(image));
  if (t.root && isInside(path.join(dir, path.basename(image)), realDir(t.root))) {
    throw new DmiError(
      'USAGE',
      `${image}: refusing to write under the Docker root ${t.root} (evidence is never written)`,
    );
  }
  const st = statOrNull(image);
  if (!st) return;
  for (const ev of evidenceFiles(t.pool)) {
    const e = statOrNull(ev);
    if (e && e.dev === st.dev && e.ino === st.ino)
      throw new DmiError('USAGE', `${image} is the pool file ${ev}: refusing to overwrite evidence`);
  }
  if (!force) throw new DmiError('CONFLICT', `${image}: exists (pass --force to overwrite it)`, { path: image });
  if (!st.isFile()) throw new DmiError('CONFLICT', `${image}: exists and is not a regular file`, { path: image });
}

/** Exports the target's thin device to `image`. */
export async function exportDevice(
  t: ExportTarget,
  imagePath: string,
  opts: ExportOptions = {},
): Promise<ExportResult> {
  const t0 = performance.now();
  const image = path.resolve(imagePath);
  const sparse = opts.sparse ?? true;
  const warnings: string[] = [];
  // The sha256 worker starts while the pool and the output are opened (the copy takes it).
  if (t.size >= HASH_WORKER_MIN_BYTES) prestartHashWorker();
  let src: ReturnType<typeof openPoolSource>;
  try {
    src = openPoolSource(t.pool, { metadataSnap: opts.metadataSnap, requireData: true });
  } catch (e) {
    await dropPrestartedHashWorker();
    throw e;
  }
  const { pool, metadataFile: metadataName } = src;
  const data = src.data!;
  for (const f of src.lvmFindings) if (f.severity !== 'info') warnings.push(f.message);
  try {
    if (!pool.mappingRoots().some((r) => r.devId === t.deviceId)) {
      throw new DmiError(
        'NOT_FOUND',
        `thin device ${t.deviceId}${t.hash !== null ? ` (record ${t.record?.file ?? t.hash})` : ''} is not in the pool metadata ${metadataName}${opts.metadataSnap ? ' (metadata snapshot)' : ''}`,
      );
    }
    if (pool.liveSuperblock.needsCheck)
      warnings.push(`${metadataName}: the pool's needs_check flag is set: the metadata may be inconsistent`);
    if (t.record?.deleted) warnings.push(`${t.record.file}: the device is marked deleted (deferred deletion pending)`);
    checkOutput(image, t, opts.force ?? false);

    const r = await writeImage(image, opts.force ?? false, (out) =>
      copyThinDevice({
        pool,
        devId: t.deviceId,
        dataPath: data.path,
        dataExtents: data.extents,
        dataLabel: data.label,
        size: t.size,
        out,
        outName: image,
        sparse,
        bufferBytes: opts.bufferBytes,
        onProgress: opts.onProgress,
        signal: opts.signal,
      }),
    );
    if (r.mappedPastEnd > 0)
      warnings.push(
        `thin device ${t.deviceId} maps ${r.mappedPastEnd} bytes at or past the record size ${t.size}: not exported`,
      );
    return {
      image,
      size: t.size,
      sha256: r.sha256,
      device: { deviceId: t.deviceId, hash: t.hash },
      mappedBytes: r.mappedBytes,
      copiedBytes: r.copiedBytes,
      holes: r.holes,
      elapsedMs: Math.round(performance.now() - t0),
      holeBytes: r.holeBytes,
      sparse,
      container: t.container,
      metadata: metadataName,
      data: data.label,
      metadataSnap: opts.metadataSnap ?? false,
      warnings,
    };
  } finally {
    src.close();
    await dropPrestartedHashWorker(); // not taken: the export failed before copying, or hashed on this thread
  }
}

/**
 * Creates `image` (O_EXCL, or truncated with `force`), runs `write` on its descriptor and closes it; on any failure the
 * partial image is removed, so a failed export leaves nothing behind.
 */
export async function writeImage<T>(image: string, force: boolean, write: (fd: number) => Promise<T>): Promise<T> {
  let out: number;
  try {
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | (force ? fs.constants.O_TRUNC : fs.constants.O_EXCL);
    out = fs.openSync(image, flags, 0o600);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err?.code === 'EEXIST')
      throw new DmiError('CONFLICT', `${image}: exists (pass --force to overwrite it)`, { path: image });
    throw fsError(e, image, 'create');
  }
  let ok = false;
  try {
    const r = await write(out);
    try {
      fs.closeSync(out);
    } catch (e) {
      throw fsError(e, image, 'write');
    }
    ok = true;
    return r;
  } finally {
    if (!ok) {
      try {
        fs.closeSync(out);
      } catch {
        // already closed
      }
      fs.rmSync(image, { force: true });
    }
  }
}
