/**
 * Resolves what a user typed to one container, the way Docker does: a full id, then an exact name
 * (with or without the leading `/`), then a unique id prefix. Ambiguity and absence are errors that say
 * what was found.
 */
import * as path from 'node:path';
import type { ContainerRecord } from '../docker/containers.js';
import type { MountRecord } from '../docker/layerdb.js';
import type { DeviceRecord } from '../docker/records.js';
import { checkRef, isHex64 } from '../docker/ids.js';
import type { DockerRoot } from '../docker/root.js';
import { DmiError } from '../errors.js';
import { containerMount } from './join.js';

export function resolveContainer(root: DockerRoot, ref: string): ContainerRecord {
  checkRef(ref, 'container reference');
  const lower = ref.toLowerCase();
  const matches = /^[a-f0-9]+$/.test(lower) ? root.containerIds(lower) : [];
  if (isHex64(ref) && matches.includes(ref)) return root.container(ref);
  // A unique prefix of 12 hex digits or more (a short id, as `docker ps` prints) is taken as an id without
  // reading every config for a name: a container *named* like another's short id is the one case this differs from Docker.
  if (lower.length >= 12 && matches.length === 1) return root.container(matches[0]!);
  const name = ref.replace(/^\//, '');
  const named = root.containersNamed(name);
  if (named.length === 1) return named[0]!;
  if (named.length > 1) {
    throw new DmiError(
      'AMBIGUOUS',
      `container name "${name}" is used by ${named.length} containers: ${named.map((c) => c.id.slice(0, 12)).join(', ')}`,
      {
        candidates: named.map((c) => c.id),
      },
    );
  }
  if (matches.length === 1) return root.container(matches[0]!);
  if (matches.length > 1) {
    const shown = matches.slice(0, 10).map((id) => id.slice(0, Math.max(12, ref.length + 2)));
    throw new DmiError(
      'AMBIGUOUS',
      `"${ref}" matches ${matches.length} containers: ${shown.join(', ')}${matches.length > 10 ? ', ...' : ''}; type more of the id`,
      {
        candidates: matches,
      },
    );
  }
  throw new DmiError('NOT_FOUND', `no container "${ref}" in ${root.root} (by id, name or id prefix)`);
}

/** A container with its RW device: the layerdb mount and Docker's device record. */
export interface ContainerDevice {
  container: ContainerRecord;
  mount: MountRecord;
  record: DeviceRecord;
}

/**
 * The thin device behind a container reference: NOT_FOUND when the container has no layerdb mount-id or no
 * device record (`purpose` says what the device was wanted for: "export", "snapshot").
 */
export function containerDevice(root: DockerRoot, ref: string, purpose: string): ContainerDevice {
  const c = resolveContainer(root, ref);
  const label = c.name || c.id.slice(0, 12);
  const mount = containerMount(root, c);
  if (!mount) throw new DmiError('NOT_FOUND', `container ${label} has no layerdb mount-id: no device to ${purpose}`);
  const record = root.deviceRecord(mount.mountId);
  if (!record)
    throw new DmiError(
      'NOT_FOUND',
      `container ${label}: no device record ${path.join(root.driverHome, 'metadata', mount.mountId)}`,
    );
  return { container: c, mount, record };
}
