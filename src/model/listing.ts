/** Rows for `devices`, built from the joined model (the `containers` rows: container-list.ts). */
import { resolveNaming, thinDeviceName, type NamingOptions } from '../docker/naming.js';
import type { Problem } from '../docker/records.js';
import { DockerRoot } from '../docker/root.js';
import { humanBytes } from '../util/units.js';
import { isDmiError } from '../errors.js';
import { deviceUsage, type DeviceUsageView } from './usage.js';
import type { PoolSourceOptions } from '../pool-source/index.js';
import type { HeldView } from '../pool-source/live.js';
import { loadModel, type DeviceRole } from './join.js';
import { ownerView } from './owner.js';
import { distModule } from '../pool-source/held-read.js';

export interface DeviceRow {
  hash: string;
  /** The record's file name: the hash, or `base`. */
  recordName: string;
  deviceName: string;
  deviceId: number;
  size: number;
  sizeHuman: string;
  transactionId: number;
  initialized: boolean;
  deleted: boolean | null;
  role: DeviceRole;
  /** Human description: "container web", "init of container web", "image layer of busybox:latest", ... */
  owner: string;
  containerId: string | null;
  containerName: string | null;
  imageIds: string[];
  imageNames: string[];
  /** Usage in the pool when its metadata is readable; null: not read, or (inPool false) not in the pool. */
  usage: DeviceUsageView | null;
  /** The device is in the pool's metadata (null: the pool was not read). */
  inPool: boolean | null;
}

export interface DeviceList {
  root: string;
  poolName: string;
  nextDeviceId: number | null;
  transaction: { openTransactionId: number; deviceHash: string; deviceId: number } | null;
  devices: DeviceRow[];
  tmpFiles: string[];
  problems: Problem[];
}

export function listDevices(root: DockerRoot, naming: NamingOptions = {}): DeviceList {
  const model = loadModel(root);
  const names = resolveNaming(root.root, naming);
  const records = root.recordSet();
  const devices = model.devices.map((d) => {
    const o = ownerView(model, d.hash);
    return {
      hash: d.hash,
      recordName: d.hash === '' ? 'base' : d.hash,
      deviceName: thinDeviceName(names.prefix, d.hash),
      deviceId: d.deviceId,
      size: d.size,
      sizeHuman: humanBytes(d.size),
      transactionId: d.transactionId,
      initialized: d.initialized,
      deleted: d.deleted,
      role: o.role as DeviceRole,
      owner: o.owner,
      containerId: o.containerId,
      containerName: o.containerName,
      imageIds: o.imageIds,
      imageNames: o.imageNames,
      usage: null as DeviceUsageView | null,
      inPool: null as boolean | null,
    };
  });
  return {
    root: root.root,
    poolName: names.poolName,
    nextDeviceId: records.deviceSet?.nextDeviceId ?? null,
    transaction: records.transaction,
    devices,
    tmpFiles: records.tmpFiles,
    problems: model.problems,
  };
}

/**
 * Adds each record's pool usage (loop-lvm metadata of the root, --metadata, or --image for direct-lvm). A pool
 * that cannot be read is a problem in the list, not a failure.
 */
export function attachDeviceUsage(list: DeviceList, root: DockerRoot, opts: PoolSourceOptions = {}): DeviceList {
  try {
    const usage = deviceUsage(
      root,
      list.devices.map((d) => d.deviceId),
      opts,
    );
    if (!usage) return list;
    for (const d of list.devices) {
      d.usage = usage.get(d.deviceId) ?? null;
      d.inPool = d.usage !== null;
    }
  } catch (e) {
    if (!isDmiError(e)) throw e;
    list.problems.push({
      file: opts.metadata ?? opts.images?.join(', ') ?? root.root,
      message: `pool usage unavailable: ${e.message}`,
    });
  }
  return list;
}

/** This module, for a held read in a worker thread (pool-source/held-read.ts): `heldDeviceUsage`. */
export const LISTING_MODULE = distModule('model/listing.js');

/** `attachDeviceUsage` inside a held snapshot, in the read's worker thread (the root opened there again). */
export function heldDeviceUsage(list: DeviceList, rootDir: string, opts: PoolSourceOptions, v: HeldView): DeviceList {
  return attachDeviceUsage(list, DockerRoot.open(rootDir), { ...opts, metadataSnap: v.heldRoot !== null });
}
