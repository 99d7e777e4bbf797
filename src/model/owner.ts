/**
 * Who a device is to Docker, in one place: the role and the words every report uses (`devices`, `pool`,
 * `lvm`, metrics, recovery). "container web", "init of container web", "image layer of busybox:latest",
 * "base device", "unreferenced"; for a device in the pool that no record names, "orphan".
 */
import type { DeviceRecord } from '../docker/records.js';
import { ownerOf, type DeviceOwner, type DeviceRole, type Model } from './join.js';

/** A device's role: Docker's (from the join), `orphan` (in the pool, no record), `unknown` (no Docker root read). */
export type OwnerRole = DeviceRole | 'orphan' | 'unknown';

export interface OwnerView {
  role: OwnerRole;
  /** Who it is to Docker, in words. */
  owner: string;
  containerId: string | null;
  containerName: string | null;
  imageIds: string[];
  imageNames: string[];
}

/** The words for an owner from the join. */
export function describeOwner(o: DeviceOwner): string {
  const who = o.containerName || o.containerId?.slice(0, 12);
  const img =
    (o.imageNames?.length ? o.imageNames.join(', ') : o.imageIds?.map((i) => `sha256:${i.slice(0, 12)}`).join(', ')) ||
    '';
  switch (o.role) {
    case 'base':
      return 'base device';
    case 'container':
      return `container ${who}`;
    case 'init':
      return `init of container ${who}`;
    case 'layer':
      return img ? `image layer of ${img}` : 'image layer (no image names it)';
    default:
      return 'unreferenced';
  }
}

/** The owner of a device hash in the model. */
export function ownerView(model: Model, hash: string): OwnerView {
  const o = ownerOf(model, hash);
  return {
    role: o.role,
    owner: describeOwner(o),
    containerId: o.containerId ?? null,
    containerName: o.containerName ?? null,
    imageIds: o.imageIds ?? [],
    imageNames: o.imageNames ?? [],
  };
}

/** The owner of a thin device seen in the pool: by its record, `orphan` without one, `unknown` without a model. */
export function poolDeviceOwner(model: Model | null, rec: DeviceRecord | undefined): OwnerView {
  // Plain literals, not `{ …, ...none }`: the pool audit calls this per device, and V8 builds spreads slowly.
  if (!model)
    return { role: 'unknown', owner: '-', containerId: null, containerName: null, imageIds: [], imageNames: [] };
  if (!rec)
    return {
      role: 'orphan',
      owner: 'orphan (no Docker record)',
      containerId: null,
      containerName: null,
      imageIds: [],
      imageNames: [],
    };
  return ownerView(model, rec.hash);
}
