/**
 * What dminspect made on a live host (snapshot ids, dm devices, mounts, loop devices, pools it activated) is
 * recorded in one JSON file per snapshot under /run/dminspect, so `release` can undo it and `snapshots` can
 * list it. /run is a tmpfs: a reboot forgets the dm devices and the state together.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DmiError, fsError } from '../errors.js';

export const DEFAULT_STATE_DIR = '/run/dminspect';

export interface SnapshotState {
  version: 1;
  createdAt: string;
  /** The dm name of the read-only snapshot device (also the state file's name). */
  name: string;
  mode: 'live' | 'offline';
  root: string;
  container: { id: string; name: string } | null;
  origin: { hash: string; deviceId: number; name: string; size: number } | null;
  pool: string | null;
  /** Thin id of the snapshot inside the pool (live mode). */
  snapId: number | null;
  mountPoint: string | null;
  /** The mount point directory was made by dminspect (release removes it when empty). */
  madeMountPoint: boolean;
  fsType: string | null;
  /** The pool and loop devices dminspect set up itself (--activate-pool), released with the snapshot. */
  activatedPool: { name: string; loops: string[] } | null;
  /** Offline mode: the image file and its loop device. */
  image: { path: string; loop: string | null; keep: boolean } | null;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,120}$/;

export function checkSnapshotName(name: string): string {
  if (!NAME.test(name))
    throw new DmiError('USAGE', `invalid snapshot name ${JSON.stringify(name)}: letters, digits and _ . + - only`);
  return name;
}

export function stateFile(dir: string, name: string): string {
  return path.join(dir, `${checkSnapshotName(name)}.json`);
}

export function writeState(dir: string, st: SnapshotState): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = stateFile(dir, st.name);
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(st, null, 2), { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch (e) {
    throw fsError(e, dir, 'write state');
  }
}

export function readState(dir: string, name: string): SnapshotState | null {
  const file = stateFile(dir, name);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as SnapshotState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if (e instanceof SyntaxError) throw new DmiError('BAD_INPUT', `${file}: corrupt state file (${e.message})`);
    throw fsError(e, file);
  }
}

export function removeState(dir: string, name: string): void {
  fs.rmSync(stateFile(dir, name), { force: true });
}

export function listStates(dir: string): SnapshotState[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const out: SnapshotState[] = [];
  for (const n of names) {
    const st = readState(dir, n.slice(0, -5));
    if (st) out.push(st);
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** The state whose mount point is `dir` or whose name is `ref`. */
export function findState(dir: string, ref: string): SnapshotState | null {
  const abs = path.resolve(ref);
  for (const st of listStates(dir)) if (st.name === ref || st.mountPoint === abs) return st;
  return null;
}
