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
import { checkImageSize, copyRuns, type CopyResult, type CopyRunsOptions } from '../io/copy-executor.js';
import type { CopyRun } from '../io/copy-plan.js';
import type { ThinPool } from './pool.js';

// Callers import these from here, as before the split.
export {
  DEFAULT_COPY_BUFFER,
  HASH_WORKER_MIN_BYTES,
  dropPrestartedHashWorker,
  prestartHashWorker,
  type CopyProgress,
  type CopyResult,
} from '../io/copy-executor.js';
export type { CopyRun } from '../io/copy-plan.js';

/** The executor's options (io/copy-executor.ts), with the pool and device in place of the block size and name. */
export interface CopyDeviceOptions extends Omit<CopyRunsOptions, 'runs' | 'blockBytes' | 'deviceName'> {
  pool: ThinPool;
  devId: number;
  /**
   * The mapping runs to copy, in increasing virtual order (default: the device's mapping tree). When given,
   * `devId` need not be in the pool's device tree (it only names the device in messages).
   */
  runs?: Iterable<CopyRun>;
}

/** Copies thin device `devId` into `out`; see the module comment. */
export async function copyThinDevice(o: CopyDeviceOptions): Promise<CopyResult> {
  const { pool, devId, runs, ...rest } = o;
  checkImageSize(o.size);
  if (!runs && !pool.mappingRoots().some((r) => r.devId === devId)) {
    throw new DmiError('NOT_FOUND', `thin device ${devId} is not in the pool's mapping tree (${pool.path})`);
  }
  return copyRuns({
    ...rest,
    runs: runs ?? pool.mappingRuns(devId),
    blockBytes: pool.dataBlockBytes,
    deviceName: `thin device ${devId}`,
  });
}
