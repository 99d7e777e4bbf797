/**
 * A container report's pool usage: apart from container.ts, since it loads the pool readers (pool-source, thin/,
 * lvm/), which `container` imports only when the root has a pool to read (issue 15, start-up).
 */
import { DockerRoot } from '../docker/root.js';
import { isDmiError } from '../errors.js';
import type { PoolSourceOptions } from '../pool-source/index.js';
import { distModule } from '../pool-source/held-read.js';
import type { HeldView } from '../pool-source/live.js';
import type { ContainerReport } from './container.js';
import { deviceUsage } from './usage.js';

/** Adds the device's pool usage; unreadable pool metadata is a problem in the report, not a failure. */
export function attachUsage(r: ContainerReport, root: DockerRoot, opts: PoolSourceOptions = {}): ContainerReport {
  if (!r.device) return r;
  try {
    const u = deviceUsage(root, [r.device.deviceId], opts);
    if (u) {
      r.usage = u.get(r.device.deviceId) ?? null;
      if (!r.usage)
        r.problems.push(
          `thin device ${r.device.deviceId} is not in the pool metadata (the record outlived the device)`,
        );
    }
  } catch (e) {
    if (!isDmiError(e)) throw e;
    r.problems.push(`pool usage unavailable: ${e.message}`);
  }
  return r;
}

/** This module, for a held read in a worker thread (pool-source/held-read.ts): `heldContainerUsage`. */
export const CONTAINER_USAGE_MODULE = distModule('model/container-usage.js');

/** `attachUsage` inside a held snapshot, in the read's worker thread (the root opened there again). */
export function heldContainerUsage(
  r: ContainerReport,
  rootDir: string,
  opts: PoolSourceOptions,
  v: HeldView,
): ContainerReport {
  return attachUsage(r, DockerRoot.open(rootDir), { ...opts, metadataSnap: v.heldRoot !== null });
}
