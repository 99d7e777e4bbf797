/**
 * Joins Docker's records into one picture: which device record belongs to which container, init layer,
 * image layer or base, and which belong to nothing. The container report, `containers`, `devices` and the
 * pool audit all read from here.
 */
import * as path from 'node:path';
import type { ContainerRecord } from '../docker/containers.js';
import { byName } from '../docker/files.js';
import { isDmiError } from '../errors.js';
import type { DockerRoot } from '../docker/root.js';
import { legacyImageChain, type ImageInfo } from '../docker/images.js';
import { readLayerChain, type LayerRecord, type MountRecord } from '../docker/layerdb.js';
import type { DeviceRecord, Problem } from '../docker/records.js';

export type DeviceRole = 'base' | 'container' | 'init' | 'layer' | 'unreferenced';

export interface DeviceOwner {
  role: DeviceRole;
  /** Container id (role container / init). */
  containerId?: string;
  containerName?: string;
  /** Image ids whose chain holds this layer (role layer). */
  imageIds?: string[];
  imageNames?: string[];
  /** Layer chain id (≥ 1.10) or image id (pre-1.10), role layer. */
  chainId?: string;
}

export interface ContainerEntry {
  container: ContainerRecord;
  /** Device hash of the container's RW device (mount-id, or the id itself before 1.10). */
  mountId: string | null;
  initId: string | null;
  /** Top image layer: chain id (≥1.10) or image id (pre-1.10). */
  parentChainId: string | null;
  device: DeviceRecord | null;
}

export interface Model {
  containers: ContainerEntry[];
  devices: DeviceRecord[];
  owners: Map<string, DeviceOwner>;
  problems: Problem[];
}

/** The devmapper hashes of a container: layerdb mount (≥1.10), or the container id itself (pre-1.10). */
export function containerMount(root: DockerRoot, c: ContainerRecord, mountIdOnly = false): MountRecord | null {
  if (c.layout === 'v1') {
    const init = !mountIdOnly && root.deviceRecord(`${c.id}-init`) ? `${c.id}-init` : null;
    return { containerId: c.id, mountId: c.id, initId: init, parentChainId: c.imageId };
  }
  return root.mount(c.id, mountIdOnly);
}

export function imageNamesOf(images: Map<string, ImageInfo>, imageId: string | null): string[] {
  if (imageId === null) return [];
  return images.get(imageId)?.names ?? [];
}

/**
 * One container with its mount ids and device record, or null when its config cannot be read (a problem then);
 * a missing mount or record is a problem beside the entry. `mountIdOnly`: no init / parent.
 */
export function loadContainer(
  root: DockerRoot,
  id: string,
  problems: Problem[],
  mountIdOnly = false,
): ContainerEntry | null {
  let container: ContainerRecord;
  try {
    container = root.container(id);
  } catch (e) {
    if (!isDmiError(e)) throw e;
    problems.push({ file: path.join(root.root, 'containers', id), message: e.message });
    return null;
  }
  let mount: MountRecord | null = null;
  let device: DeviceRecord | null = null;
  try {
    mount = containerMount(root, container, mountIdOnly);
    if (mount === null)
      problems.push({
        file: path.join(root.root, 'image', 'devicemapper', 'layerdb', 'mounts', id),
        message: `container ${id.slice(0, 12)} has no layerdb mount-id`,
      });
    else device = root.deviceRecord(mount.mountId);
  } catch (e) {
    if (!isDmiError(e)) throw e;
    problems.push({ file: (e.details?.path as string) ?? root.root, message: e.message });
  }
  return {
    container,
    mountId: mount?.mountId ?? null,
    initId: mount?.initId ?? null,
    parentChainId: mount?.parentChainId ?? null,
    device,
  };
}

/** Oldest first: Docker's RFC 3339 times and hex ids are ASCII, so code-unit order (byName), the same in every locale. */
export function byCreated(
  a: { created: string | null; id: string },
  b: { created: string | null; id: string },
): number {
  return byName(a.created ?? '', b.created ?? '') || byName(a.id, b.id);
}

/** Every container with its mount ids and device record, oldest first; bad ones become problems. */
export function loadContainers(root: DockerRoot, problems: Problem[], mountIdOnly = false): ContainerEntry[] {
  const out: ContainerEntry[] = [];
  for (const id of root.containerIds()) {
    const entry = loadContainer(root, id, problems, mountIdOnly);
    if (entry) out.push(entry);
  }
  out.sort((a, b) => byCreated(a.container, b.container));
  return out;
}

/** Assigns each device hash its owner. */
export function loadModel(root: DockerRoot): Model {
  const problems: Problem[] = [];
  const records = root.recordSet();
  problems.push(...records.problems);
  const containers = loadContainers(root, problems);
  const { images, problems: imageProblems } = root.imageSet();
  problems.push(...imageProblems);
  const owners = new Map<string, DeviceOwner>();
  owners.set('', { role: 'base' });

  for (const e of containers) {
    const c = e.container;
    if (e.mountId) owners.set(e.mountId, { role: 'container', containerId: c.id, containerName: c.name });
    if (e.initId) owners.set(e.initId, { role: 'init', containerId: c.id, containerName: c.name });
  }

  // Image layers: every layer in the layer store, then which images hold it.
  const layerOwner = (hash: string, chainId: string): DeviceOwner => {
    let o = owners.get(hash);
    if (!o || o.role !== 'layer') {
      o = { role: 'layer', chainId, imageIds: [], imageNames: [] };
      if (!owners.has(hash)) owners.set(hash, o);
    }
    return o;
  };
  const { layers, problems: layerProblems } = root.allLayers();
  problems.push(...layerProblems);
  const byChain = new Map(layers.map((l) => [l.chainId, l]));
  for (const l of layers) layerOwner(l.cacheId, l.chainId);
  for (const img of images.values()) {
    let hashes: string[] = [];
    try {
      hashes = imageLayerHashes(root, img, byChain);
    } catch (e) {
      if (!isDmiError(e)) throw e;
      problems.push({ file: path.join(root.root, 'image', 'devicemapper', 'layerdb'), message: e.message });
    }
    for (const h of hashes) {
      const o = layerOwner(h, h);
      if (!o.imageIds!.includes(img.id)) {
        o.imageIds!.push(img.id);
        o.imageNames!.push(...img.names);
      }
    }
  }
  return { containers, devices: records.devices, owners, problems };
}

/** Device hashes of an image's layers, top first: layerdb cache-ids (≥1.10) or graph image ids (pre-1.10). */
export function imageLayerHashes(root: DockerRoot, img: ImageInfo, byChain?: Map<string, LayerRecord>): string[] {
  if (img.legacy) return legacyImageChain(root.imageSet().images, img.id);
  if (img.topChainId === null) return [];
  return readLayerChain(root.root, img.topChainId, (c) => byChain?.get(c) ?? root.layer(c)).map((l) => l.cacheId);
}

export function ownerOf(model: Model, hash: string): DeviceOwner {
  return model.owners.get(hash) ?? { role: 'unreferenced' };
}
