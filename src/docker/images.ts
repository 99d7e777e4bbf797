/**
 * Image names and ids: `image/devicemapper/repositories.json` and the imagedb
 * (`imagedb/content/sha256/<id>`, whose `rootfs.diff_ids` give the layer chain), and the pre-1.10
 * `repositories-devicemapper` + `graph/<id>/json`. Facts: moby reference/store.go, image/fs.go, layer/layer.go.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { DmiError, isDmiError } from '../errors.js';
import { exists, isObject, listDir, readJson } from './files.js';
import { isHex64, parseDigest } from './ids.js';
import type { Problem } from './records.js';

export interface ImageInfo {
  /** Image id (64 hex, without `sha256:`). */
  id: string;
  /** Repository references that point at it (`busybox:latest`, ...). */
  names: string[];
  /** Chain id of the top layer (≥ 1.10), or for pre-1.10 images the image id itself (its device hash). */
  topChainId: string | null;
  /** Parent image id (pre-1.10 graph). */
  parentId: string | null;
  /** A pre-1.10 graph image: its layers are image ids, each a device hash. */
  legacy: boolean;
}

export interface ImageSet {
  images: Map<string, ImageInfo>;
  problems: Problem[];
}

/**
 * node:crypto, loaded at the first chain id: importing it costs ~10 ms of start-up (its JavaScript modules), and
 * runs that never hash import this module too: `pool --metadata` without a Docker root, and `containers` and
 * `container`, which read the images for their names only (the top chain id is computed when first read; issue 15).
 */
let cryptoModule: typeof import('node:crypto') | null = null;
const sha256Hex = (text: string): string => {
  cryptoModule ??= createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  return cryptoModule.createHash('sha256').update(text).digest('hex');
};

/** Chain id rule: chain(1) = diff(1), chain(n) = sha256("<chain(n-1)> <diff(n)>"). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  let prev: string | null = null;
  for (const d of diffIds) {
    const next: string = prev === null ? d : sha256Hex(`sha256:${prev} sha256:${d}`);
    out.push(next);
    prev = next;
  }
  return out;
}

/** repositories.json: image id → its references. */
export function readRepositories(file: string): Map<string, string[]> {
  const names = new Map<string, string[]>();
  if (!exists(file)) return names;
  const obj = readJson(file);
  if (!isObject(obj)) throw new DmiError('BAD_INPUT', `${file}: expected a JSON object`, { path: file });
  const repos = obj.Repositories ?? {};
  if (!isObject(repos)) throw new DmiError('BAD_INPUT', `${file}: "Repositories" is not an object`, { path: file });
  for (const [repo, refs] of Object.entries(repos)) {
    if (!isObject(refs)) continue;
    for (const [ref, id] of Object.entries(refs)) {
      if (typeof id !== 'string') continue;
      const hex = id.startsWith('sha256:') ? id.slice(7) : id;
      if (!isHex64(hex)) continue;
      // Pre-1.10 files map tag → id under the repo; ≥1.10 map "repo:tag" → "sha256:id".
      const name = ref.includes(':') || ref.includes('@') ? ref : `${repo}:${ref}`;
      const list = names.get(hex) ?? [];
      list.push(name);
      names.set(hex, list);
    }
  }
  for (const list of names.values()) list.sort();
  return names;
}

/** Every image: imagedb (≥ 1.10) and graph (pre-1.10). */
export function readImages(root: string): ImageSet {
  const images = new Map<string, ImageInfo>();
  const problems: Problem[] = [];
  const imageDir = path.join(root, 'image', 'devicemapper');
  const names = new Map<string, string[]>();
  const merge = (m: Map<string, string[]>) => {
    for (const [k, v] of m) names.set(k, [...(names.get(k) ?? []), ...v]);
  };
  for (const file of [path.join(imageDir, 'repositories.json'), path.join(root, 'repositories-devicemapper')]) {
    try {
      merge(readRepositories(file));
    } catch (e) {
      if (!isDmiError(e)) throw e;
      problems.push({ file, message: e.message });
    }
  }

  const contentDir = path.join(imageDir, 'imagedb', 'content', 'sha256');
  for (const ent of listDir(contentDir)) {
    if (!isHex64(ent.name)) continue;
    const file = path.join(contentDir, ent.name);
    try {
      const cfg = readJson(file);
      const rootfs = isObject(cfg) ? cfg.rootfs : undefined;
      const diffs = isObject(rootfs) && Array.isArray(rootfs.diff_ids) ? rootfs.diff_ids : null;
      if (diffs === null) throw new DmiError('BAD_INPUT', `${file}: no rootfs.diff_ids`, { path: file });
      const ids = diffs.map((d, i) => parseDigest(String(d), `${file} rootfs.diff_ids[${i}]`));
      let top: string | null | undefined;
      images.set(ent.name, {
        id: ent.name,
        names: names.get(ent.name) ?? [],
        // computed when first read (a SHA-256 per layer): the listings want the names only
        get topChainId(): string | null {
          if (top === undefined) top = chainIds(ids).at(-1) ?? null;
          return top;
        },
        parentId: null,
        legacy: false,
      });
    } catch (e) {
      if (!isDmiError(e)) throw e;
      problems.push({ file, message: e.message });
    }
  }

  // Pre-1.10: graph/<id>/json, the image id is also its device hash.
  const graphDir = path.join(root, 'graph');
  for (const ent of listDir(graphDir)) {
    if (!isHex64(ent.name) || images.has(ent.name)) continue;
    const file = path.join(graphDir, ent.name, 'json');
    try {
      const j = readJson(file);
      const parent = isObject(j) && typeof j.parent === 'string' && isHex64(j.parent) ? j.parent : null;
      images.set(ent.name, {
        id: ent.name,
        names: names.get(ent.name) ?? [],
        topChainId: ent.name,
        parentId: parent,
        legacy: true,
      });
    } catch (e) {
      if (!isDmiError(e)) throw e;
      problems.push({ file, message: e.message });
    }
  }
  return { images, problems };
}

/** Pre-1.10 image ancestry: image ids from `id` down to the bottom (each is a device hash). */
export function legacyImageChain(images: Map<string, ImageInfo>, id: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  let cur: string | null = id;
  while (cur !== null && !seen.has(cur) && out.length < 4096) {
    seen.add(cur);
    out.push(cur);
    cur = images.get(cur)?.parentId ?? null;
  }
  return out;
}
