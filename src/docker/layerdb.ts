/**
 * The layer store (Docker ≥ 1.10): `image/devicemapper/layerdb/mounts/<container>/{mount-id,init-id,parent}`
 * and `layerdb/sha256/<chain-id>/{cache-id,diff,parent,size}`. Facts: moby layer/filestore.go.
 */
import * as path from 'node:path';
import { DmiError } from '../errors.js';
import { listDir, readIdFile, readTextIfExists, underRoot } from './files.js';
import { isDeviceHash, isHex64, parseDigest } from './ids.js';

export interface MountRecord {
  containerId: string;
  /** Device hash of the container's RW device. */
  mountId: string;
  /** Device hash of the init layer (`<mount-id>-init`), or null when the file is absent. */
  initId: string | null;
  /** Chain id of the image's top layer, or null (a container from `scratch`). */
  parentChainId: string | null;
}

export interface LayerRecord {
  chainId: string;
  /** Device hash of the layer. */
  cacheId: string;
  diffId: string | null;
  parentChainId: string | null;
  size: number | null;
}

export function layerdbDir(root: string, driver = 'devicemapper'): string {
  return underRoot(root, driver === 'devicemapper' ? 'image/devicemapper/layerdb' : `image/${driver}/layerdb`);
}

function readOptional(file: string): string | null {
  return readTextIfExists(file)?.trim() ?? null;
}

function checkHash(value: string, file: string): string {
  if (!isDeviceHash(value)) {
    throw new DmiError(
      'BAD_INPUT',
      `${file}: ${JSON.stringify(value.slice(0, 80))} is not a device hash (64 hex digits, optionally -init)`,
      { path: file },
    );
  }
  return value;
}

/**
 * The layerdb mount record of a container, or null when the container has none. `mountIdOnly` skips init-id
 * and parent (a listing of thousands of containers needs only the device hash).
 */
export function readMount(root: string, containerId: string, mountIdOnly = false): MountRecord | null {
  if (!isHex64(containerId)) throw new DmiError('USAGE', `invalid container id ${JSON.stringify(containerId)}`);
  const dir = `${layerdbDir(root)}/mounts/${containerId}`; // 64 hex: no normalizing needed
  const mountFile = `${dir}/mount-id`;
  const mountText = readOptional(mountFile);
  if (mountText === null) return null;
  const mountId = checkHash(mountText, mountFile);
  if (mountIdOnly) return { containerId, mountId, initId: null, parentChainId: null };
  const initFile = `${dir}/init-id`;
  const init = readOptional(initFile);
  const parentFile = `${dir}/parent`;
  const parent = readOptional(parentFile);
  return {
    containerId,
    mountId,
    initId: init === null || init === '' ? null : checkHash(init, initFile),
    parentChainId: parent === null || parent === '' ? null : parseDigest(parent, parentFile),
  };
}

/** Container ids that have a layerdb mount directory. */
export function listMountIds(root: string): string[] {
  return listDir(path.join(layerdbDir(root), 'mounts'))
    .filter((e) => e.isDirectory() && isHex64(e.name))
    .map((e) => e.name);
}

export function readLayer(root: string, chainId: string): LayerRecord {
  if (!isHex64(chainId)) throw new DmiError('USAGE', `invalid chain id ${JSON.stringify(chainId)}`);
  const dir = path.join(layerdbDir(root), 'sha256', chainId);
  const cacheFile = path.join(dir, 'cache-id');
  const cacheId = checkHash(readIdFile(cacheFile), cacheFile);
  const diffFile = path.join(dir, 'diff');
  const diff = readOptional(diffFile);
  const parentFile = path.join(dir, 'parent');
  const parent = readOptional(parentFile);
  const sizeFile = path.join(dir, 'size');
  const sizeText = readOptional(sizeFile);
  let size: number | null = null;
  if (sizeText !== null) {
    if (!/^\d+$/.test(sizeText))
      throw new DmiError('BAD_INPUT', `${sizeFile}: ${JSON.stringify(sizeText.slice(0, 40))} is not a size`, {
        path: sizeFile,
      });
    size = Number(sizeText);
  }
  return {
    chainId,
    cacheId,
    diffId: diff === null ? null : parseDigest(diff, diffFile),
    parentChainId: parent === null || parent === '' ? null : parseDigest(parent, parentFile),
    size,
  };
}

export function listLayerChainIds(root: string): string[] {
  return listDir(path.join(layerdbDir(root), 'sha256'))
    .filter((e) => e.isDirectory() && isHex64(e.name))
    .map((e) => e.name);
}

/** Layers from `top` down to the bottom layer; a loop in the parent links is an error. */
export function readLayerChain(
  root: string,
  topChainId: string,
  lookup: (chain: string) => LayerRecord = (c) => readLayer(root, c),
): LayerRecord[] {
  const chain: LayerRecord[] = [];
  const seen = new Set<string>();
  let id: string | null = topChainId;
  while (id !== null) {
    if (seen.has(id))
      throw new DmiError('BAD_INPUT', `${layerdbDir(root)}: layer ${id} is its own ancestor (parent loop)`);
    if (seen.size > 4096) throw new DmiError('BAD_INPUT', `${layerdbDir(root)}: layer chain deeper than 4096`);
    seen.add(id);
    const layer = lookup(id);
    chain.push(layer);
    id = layer.parentChainId;
  }
  return chain;
}
