/**
 * Containers: `containers/<id>/config.v2.json` (Docker ≥ 1.10) and the pre-1.10 `config.json`.
 * Facts: moby container/container.go, container/state.go.
 */
import { DmiError } from '../errors.js';
import { isObject, listDir, listSubdirs, parseJson, readTextIfExists, underRoot } from './files.js';
import { isHex64 } from './ids.js';

export type ContainerLayout = 'v2' | 'v1';

export interface ContainerState {
  /** Docker's state string: created, running, paused, restarting, removing, exited, dead. */
  status: string;
  running: boolean;
  pid: number;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface ContainerRecord {
  id: string;
  /** Name without the leading `/`. */
  name: string;
  /** Image id (64 hex) or null. */
  imageId: string | null;
  /** The image as the user typed it (`Config.Image`). */
  configImage: string | null;
  created: string | null;
  driver: string | null;
  state: ContainerState;
  layout: ContainerLayout;
  file: string;
}

export function containersDir(root: string): string {
  return underRoot(root, 'containers');
}

const ZERO_TIME = /^0001-01-01T00:00:00/;

function timeOrNull(v: unknown): string | null {
  return typeof v === 'string' && v !== '' && !ZERO_TIME.test(v) ? v : null;
}

/** Docker's State.StateString(). */
function stateString(s: Record<string, unknown>): string {
  if (s.Running === true) {
    if (s.Paused === true) return 'paused';
    if (s.Restarting === true) return 'restarting';
    return 'running';
  }
  if (s.RemovalInProgress === true) return 'removing';
  if (s.Dead === true) return 'dead';
  if (timeOrNull(s.StartedAt) === null) return 'created';
  return 'exited';
}

export function parseContainer(obj: unknown, file: string, layout: ContainerLayout, dirId: string): ContainerRecord {
  if (!isObject(obj)) throw new DmiError('BAD_INPUT', `${file}: expected a JSON object`, { path: file });
  const id = obj.ID;
  if (typeof id !== 'string' || !isHex64(id))
    throw new DmiError('BAD_INPUT', `${file}: "ID" is ${JSON.stringify(id)}, not a 64-hex container id`, {
      path: file,
    });
  if (id !== dirId)
    throw new DmiError('BAD_INPUT', `${file}: "ID" ${id} does not match its directory ${dirId}`, { path: file });
  const rawName = typeof obj.Name === 'string' ? obj.Name : '';
  const image = typeof obj.Image === 'string' ? obj.Image : null;
  const imageHex = image === null ? null : image.startsWith('sha256:') ? image.slice(7) : image;
  const config = isObject(obj.Config) ? obj.Config : {};
  const s = isObject(obj.State) ? obj.State : {};
  const exit = typeof s.ExitCode === 'number' ? s.ExitCode : null;
  const status = stateString(s);
  return {
    id,
    name: rawName.replace(/^\//, ''),
    imageId: imageHex !== null && isHex64(imageHex) ? imageHex : null,
    configImage: typeof config.Image === 'string' ? config.Image : null,
    created: timeOrNull(obj.Created),
    driver: typeof obj.Driver === 'string' ? obj.Driver : null,
    state: {
      status,
      running: s.Running === true,
      pid: typeof s.Pid === 'number' ? s.Pid : 0,
      exitCode: status === 'created' ? null : exit,
      startedAt: timeOrNull(s.StartedAt),
      finishedAt: timeOrNull(s.FinishedAt),
    },
    layout,
    file,
  };
}

export function readContainer(root: string, id: string): ContainerRecord {
  if (!isHex64(id)) throw new DmiError('USAGE', `invalid container id ${JSON.stringify(id)}`);
  const dir = `${containersDir(root)}/${id}`; // id is 64 hex: no normalizing needed (a join per file adds up)
  for (const [name, layout] of [
    ['config.v2.json', 'v2'],
    ['config.json', 'v1'],
  ] as const) {
    const file = `${dir}/${name}`;
    const text = readTextIfExists(file);
    if (text !== null) return parseContainer(parseJson(text, file), file, layout, id);
  }
  throw new DmiError('BAD_INPUT', `${dir}: no config.v2.json or config.json`, { path: dir });
}

/** Ids of the container directories (names that are 64 hex), those starting with `prefix` when given. */
export function listContainerIds(root: string, prefix = ''): string[] {
  if (prefix !== '') return listSubdirs(containersDir(root), (n) => n.startsWith(prefix) && isHex64(n));
  return listDir(containersDir(root))
    .filter((e) => e.name.startsWith(prefix) && e.isDirectory() && isHex64(e.name))
    .map((e) => e.name);
}
