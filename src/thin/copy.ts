/**
 * Streams one thin device out of a pool's data file into an image: virtual block v of the device is
 * data block d of the data file per the device's mapping tree; unmapped blocks read as zeros and are
 * left as holes (sparse) or written as zeros. The image is cut at `size` bytes (the pool keeps no
 * device size: the caller supplies it). The sha256 of the image is computed while writing.
 *
 * This is the thin-format part: the runs come from the device's mapping tree (ThinPool.mappingRuns), or from
 * the caller (`runs`: e.g. a deleted device's stale mapping tree). The plan (which bytes, in data order within
 * each window) is src/io/copy-plan.ts, the I/O and hashing src/io/copy-executor.ts.
 *
 * Knows nothing of Docker. Errors are DmiError: BAD_INPUT (size not a multiple of 512, a mapped block
 * past the end of the data file, a mapping past the data space map — from ThinPool.mappingRuns),
 * NOT_FOUND (unknown device id, missing data file), IO (a write failed: ENOSPC, EIO, ...; the caller
 * removes the partial output).
 */
import { DmiError } from '../errors.js';
import type { Extent } from '../io/extents.js';
import { checkImageSize, copyRuns, type CopyProgress, type CopyResult } from '../io/copy-executor.js';
import type { CopyRun } from '../io/copy-plan.js';
import type { ThinPool } from './pool.js';

// Callers import these from here, as before the split.
export { DEFAULT_COPY_BUFFER, type CopyProgress, type CopyResult } from '../io/copy-executor.js';
export type { CopyRun } from '../io/copy-plan.js';

export interface CopyDeviceOptions {
  pool: ThinPool;
  devId: number;
  /**
   * The mapping runs to copy, in increasing virtual order (default: the device's mapping tree). When given,
   * `devId` need not be in the pool's device tree (it only names the device in messages).
   */
  runs?: Iterable<CopyRun>;
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
  /** Bytes per window of the copy's ring, and windows in it (see io/copy-executor.ts). */
  bufferBytes?: number;
  slots?: number;
  /** Hash in a worker thread (default 'auto': for images of 64 MiB or more). */
  hashWorker?: boolean | 'auto';
  /** Read on this thread, through the thread pool, or by speed (default 'auto'; see io/copy-executor.ts). */
  readMode?: 'sync' | 'async' | 'auto';
  onProgress?: (p: CopyProgress) => void;
  signal?: AbortSignal;
}

/** Copies thin device `devId` into `out`; see the module comment. */
export async function copyThinDevice(o: CopyDeviceOptions): Promise<CopyResult> {
  const { pool, devId } = o;
  checkImageSize(o.size);
  if (!o.runs && !pool.mappingRoots().some((r) => r.devId === devId)) {
    throw new DmiError('NOT_FOUND', `thin device ${devId} is not in the pool's mapping tree (${pool.path})`);
  }
  return copyRuns({
    runs: o.runs ?? pool.mappingRuns(devId),
    blockBytes: pool.dataBlockBytes,
    deviceName: `thin device ${devId}`,
    dataPath: o.dataPath,
    dataExtents: o.dataExtents,
    dataLabel: o.dataLabel,
    size: o.size,
    out: o.out,
    outName: o.outName,
    sparse: o.sparse,
    bufferBytes: o.bufferBytes,
    slots: o.slots,
    hashWorker: o.hashWorker,
    readMode: o.readMode,
    onProgress: o.onProgress,
    signal: o.signal,
  });
}
