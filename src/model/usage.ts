/** A device's usage in the pool (mapped / exclusive / shared, as thin_ls counts them), for the reports. */
import type { DockerRoot } from '../docker/root.js';
import { hasPool, locatePool, withPool, type PoolSourceOptions } from '../pool-source/index.js';

/** A device's usage in the pool, in data blocks and bytes (as thin_ls counts them). */
export interface DeviceUsageView {
  deviceId: number;
  mappedBlocks: number;
  exclusiveBlocks: number;
  sharedBlocks: number;
  mappedBytes: number;
  exclusiveBytes: number;
  sharedBytes: number;
}

export function usageView(
  deviceId: number,
  u: { mapped: number; exclusive: number; shared: number },
  blockBytes: number,
): DeviceUsageView {
  return {
    deviceId,
    mappedBlocks: u.mapped,
    exclusiveBlocks: u.exclusive,
    sharedBlocks: u.shared,
    mappedBytes: u.mapped * blockBytes,
    exclusiveBytes: u.exclusive * blockBytes,
    sharedBytes: u.shared * blockBytes,
  };
}

/**
 * Mapped / exclusive / shared of some devices, from the root's pool (pool-source). Null when the root has no
 * loop-lvm metadata and none was named; a device not in the pool maps to null.
 */
export function deviceUsage(
  root: DockerRoot,
  ids: number[],
  opts: PoolSourceOptions = {},
): Map<number, DeviceUsageView | null> | null {
  if (!hasPool(root.root, opts)) return null;
  return withPool(locatePool(root.root, opts), { metadataSnap: opts.metadataSnap }, ({ pool }) => {
    const usage = pool.usage();
    const bs = pool.dataBlockBytes;
    const out = new Map<number, DeviceUsageView | null>();
    for (const id of ids) {
      const u = usage.get(id);
      out.set(id, u ? usageView(id, u, bs) : null);
    }
    return out;
  });
}
