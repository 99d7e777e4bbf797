/**
 * A Docker root (default /var/lib/docker) that uses the devicemapper driver: checks that it is one and
 * gives read-only access to its records. Read lazily and cached, so one container lookup on a host with
 * thousands of containers reads only what it needs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DmiError, fsError, isDmiError } from '../errors.js';
import { containersDir, listContainerIds, readContainer, type ContainerRecord } from './containers.js';
import { byName, exists, fileContains, isDirectory } from './files.js';
import { readImages, type ImageSet } from './images.js';
import {
  listLayerChainIds,
  listMountIds,
  readLayer,
  readMount,
  type LayerRecord,
  type MountRecord,
} from './layerdb.js';
import { readDeviceRecord, readRecordSet, type DeviceRecord, type Problem, type RecordSet } from './records.js';

export const DEFAULT_ROOT = '/var/lib/docker';

/**
 * Throws what listing `dir` would throw (EACCES, ENOTDIR, ENOENT) after reading one entry: a root's metadata/ holds
 * one file per device (20,000 and more), which a full readdir would read just to check the permission.
 */
function canList(dir: string): void {
  const d = fs.opendirSync(dir);
  try {
    d.readSync();
  } finally {
    d.closeSync();
  }
}

export class DockerRoot {
  readonly root: string;
  private records: RecordSet | null = null;
  private images: ImageSet | null = null;
  private layers = new Map<string, LayerRecord>();

  private constructor(root: string) {
    this.root = root;
  }

  /** Opens `root`, refusing anything that is not a Docker root with devicemapper data. */
  static open(root: string): DockerRoot {
    const abs = path.resolve(root);
    let st: fs.Stats;
    try {
      st = fs.statSync(abs);
    } catch (e) {
      const err = fsError(e, abs, 'open');
      if (err.code === 'NOT_FOUND')
        throw new DmiError('NOT_DOCKER_ROOT', `${abs}: no such directory (use --root to name the Docker root)`, {
          path: abs,
        });
      throw err;
    }
    if (!st.isDirectory()) throw new DmiError('NOT_DOCKER_ROOT', `${abs}: not a directory`, { path: abs });
    try {
      canList(abs);
    } catch (e) {
      throw fsError(e, abs, 'list');
    }
    const dm = path.join(abs, 'devicemapper');
    if (!isDirectory(dm)) {
      const other = ['overlay2', 'overlay', 'aufs', 'btrfs', 'zfs', 'vfs'].find((d) => isDirectory(path.join(abs, d)));
      const hint = other
        ? ` (it uses the ${other} storage driver)`
        : isDirectory(path.join(abs, 'containers'))
          ? ''
          : ' (no containers/ either)';
      throw new DmiError(
        'NOT_DOCKER_ROOT',
        `${abs}: not a Docker root with devicemapper storage: no devicemapper/ directory${hint}`,
        { path: abs },
      );
    }
    if (!isDirectory(path.join(dm, 'metadata')) && !exists(path.join(dm, 'json'))) {
      throw new DmiError(
        'NOT_DOCKER_ROOT',
        `${abs}: not a Docker root with devicemapper storage: no devicemapper/metadata/ records`,
        { path: abs },
      );
    }
    try {
      canList(path.join(dm, 'metadata'));
    } catch (e) {
      const err = fsError(e, path.join(dm, 'metadata'), 'list');
      if (err.code !== 'NOT_FOUND') throw err;
    }
    return new DockerRoot(abs);
  }

  get driverHome(): string {
    return path.join(this.root, 'devicemapper');
  }

  /** Every device record, the pool-wide records, and the files that could not be read. */
  recordSet(): RecordSet {
    this.records ??= readRecordSet(this.root);
    return this.records;
  }

  /** One device record by hash (from its file, or from the pre-1.4 json); null when there is none. */
  deviceRecord(hash: string): DeviceRecord | null {
    if (this.records) return this.records.devices.find((d) => d.hash === hash) ?? null;
    try {
      return readDeviceRecord(this.root, hash);
    } catch (e) {
      if (!isDmiError(e) || e.code !== 'NOT_FOUND') throw e;
    }
    if (exists(path.join(this.driverHome, 'json')))
      return this.recordSet().devices.find((d) => d.hash === hash) ?? null;
    return null;
  }

  imageSet(): ImageSet {
    this.images ??= readImages(this.root);
    return this.images;
  }

  layer(chainId: string): LayerRecord {
    let l = this.layers.get(chainId);
    if (!l) {
      l = readLayer(this.root, chainId);
      this.layers.set(chainId, l);
    }
    return l;
  }

  /** Every layer in the layer store; unreadable ones become problems. */
  allLayers(): { layers: LayerRecord[]; problems: Problem[] } {
    const layers: LayerRecord[] = [];
    const problems: Problem[] = [];
    for (const id of listLayerChainIds(this.root)) {
      try {
        layers.push(this.layer(id));
      } catch (e) {
        if (!isDmiError(e)) throw e;
        problems.push({
          file: path.join(this.root, 'image', 'devicemapper', 'layerdb', 'sha256', id),
          message: e.message,
        });
      }
    }
    return { layers, problems };
  }

  /** Container ids, or those starting with `prefix` (lower-case hex). */
  containerIds(prefix = ''): string[] {
    return listContainerIds(this.root, prefix);
  }

  container(id: string): ContainerRecord {
    return readContainer(this.root, id);
  }

  /** Containers whose name is `name`: parses only the configs that mention it. */
  containersNamed(name: string): ContainerRecord[] {
    const out: ContainerRecord[] = [];
    const needle = Buffer.from(name);
    const containers = containersDir(this.root);
    for (const id of this.containerIds()) {
      const dir = `${containers}/${id}`; // 64 hex: no normalizing needed
      // config.json (before Docker 1.10) is looked for without opening it: a failed open throws, 10,000 times
      const v1 = `${dir}/config.json`;
      if (!fileContains(`${dir}/config.v2.json`, needle) && !(exists(v1) && fileContains(v1, needle))) continue;
      try {
        const c = this.container(id);
        if (c.name === name) out.push(c);
      } catch (e) {
        if (!isDmiError(e)) throw e;
      }
    }
    return out;
  }

  /** The layerdb mount of a ≥1.10 container, or null. */
  mount(containerId: string, mountIdOnly = false): MountRecord | null {
    return readMount(this.root, containerId, mountIdOnly);
  }

  mountContainerIds(): string[] {
    return listMountIds(this.root);
  }

  /** `mnt/<hash>` directories under the driver home. */
  mntDirs(): string[] {
    try {
      return fs.readdirSync(path.join(this.driverHome, 'mnt')).sort(byName);
    } catch {
      return [];
    }
  }
}
