/**
 * Rows for `containers`. Apart from listing.ts (`devices`), whose pool usage brings in the thin-metadata reader:
 * `containers` loads the Docker readers only (issue 15, start-up).
 */
import type { Problem } from '../docker/records.js';
import type { DockerRoot } from '../docker/root.js';
import { humanBytes } from '../util/units.js';
import { byCreated, imageNamesOf, loadContainer } from './join.js';

export interface ContainerRow {
  id: string;
  name: string;
  image: string | null;
  imageId: string | null;
  state: string;
  created: string | null;
  mountId: string | null;
  deviceId: number | null;
  size: number | null;
  sizeHuman: string | null;
  deleted: boolean | null;
}

export interface ContainerList {
  root: string;
  containers: ContainerRow[];
  problems: Problem[];
}

/**
 * The `containers` rows, oldest first. Each container's records are read, turned into its row and dropped before
 * the next (10,000 containers: the configs and device records never pile up in the heap, only the rows).
 */
export function listContainers(root: DockerRoot): ContainerList {
  const problems: Problem[] = [];
  const { images, problems: imageProblems } = root.imageSet();
  const containers: ContainerRow[] = [];
  for (const id of root.containerIds()) {
    const entry = loadContainer(root, id, problems, true);
    if (!entry) continue;
    const { container: c, mountId, device } = entry;
    containers.push({
      id: c.id,
      name: c.name,
      image:
        imageNamesOf(images, c.imageId)[0] ?? c.configImage ?? (c.imageId ? `sha256:${c.imageId.slice(0, 12)}` : null),
      imageId: c.imageId,
      state: c.state.status,
      created: c.created,
      mountId,
      deviceId: device?.deviceId ?? null,
      size: device?.size ?? null,
      sizeHuman: device ? humanBytes(device.size) : null,
      deleted: device?.deleted ?? null,
    });
  }
  containers.sort(byCreated);
  problems.push(...imageProblems);
  return { root: root.root, containers, problems };
}
