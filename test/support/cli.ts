import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SAMPLE = path.join(REPO, 'fixtures', 'sample');
export const LEGACY = path.join(REPO, 'fixtures', 'legacy-v1');
export const BIN = path.join(REPO, 'bin', 'dminspect.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in this process with captured output. */
export async function cli(...args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'dminspect', ...args], {
    out: (s) => (stdout += s.endsWith('\n') ? s : `${s}\n`),
    err: (s) => (stderr += s.endsWith('\n') ? s : `${s}\n`),
  });
  return { code, stdout, stderr };
}

export async function cliJson<T = any>(...args: string[]): Promise<T> {
  const r = await cli(...args, '--json');
  if (r.code !== 0) throw new Error(`dminspect ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Runs the built bin/dminspect.js as a user would (needs `npm run build`). */
export function spawnCli(args: string[], opts: { uid?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The one way tests make scratch directories: a fresh one under the system's tmp (`mode`: chmod it, e.g. 0o755). */
export function tmpDir(prefix = 'dminspect-test-', mode?: number): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (mode !== undefined) fs.chmodSync(d, mode);
  return d;
}

/** Fresh directories under one per-process root made lazily with tmpDir; `remove()` deletes them all. */
export function tmpGroup(prefix: string): { dir: () => string; remove: () => void } {
  let root: string | null = null;
  return {
    dir: () => fs.mkdtempSync(path.join((root ??= tmpDir(prefix)), 't')),
    remove: () => {
      if (root) fs.rmSync(root, { recursive: true, force: true });
      root = null;
    },
  };
}

/** sha256 of every file under dir (but those `skip` rejects), to prove a command wrote nothing. */
export function treeDigest(dir: string, skip: (rel: string) => boolean = () => false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && !skip(path.relative(dir, p))) out.set(path.relative(dir, p), hashFile(p));
    }
  };
  walk(dir);
  return out;
}

export function hashFile(p: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(p, 'r');
  const buf = Buffer.allocUnsafe(8 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Read-only mount options as dminspect uses them (no journal replay; xfs snapshots share their origin's UUID). */
const RO_OPTS: Record<string, string> = { xfs: 'ro,norecovery,nouuid', ext4: 'ro,noload' };

/** Attaches `image` to a read-only loop device, mounts it read-only, reads `rel`, and takes both down again. */
export function readFromImage(image: string, fsType: string, rel: string): string {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'dminspect-mnt-'));
  const loop = execFileSync('losetup', ['--find', '--show', '--read-only', image], { encoding: 'utf8' }).trim();
  try {
    execFileSync('mount', ['-t', fsType, '-o', RO_OPTS[fsType] ?? 'ro', loop, mnt]);
    try {
      return fs.readFileSync(path.join(mnt, rel), 'utf8');
    } finally {
      execFileSync('umount', [mnt]);
    }
  } finally {
    execFileSync('losetup', ['-d', loop]);
    fs.rmdirSync(mnt);
  }
}

/**
 * `thin_ls` (the reference) on a metadata file: device id → [MAPPED_BLOCKS, EXCLUSIVE_BLOCKS, SHARED_BLOCKS,
 * TRANSACTION, CREATE_TIME, SNAP_TIME].
 */
export function thinLsRows(meta: string): Map<number, number[]> {
  const out = execFileSync(
    'thin_ls',
    ['--no-headers', '-o', 'DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,TRANSACTION,CREATE_TIME,SNAP_TIME', meta],
    { encoding: 'utf8' },
  );
  return new Map(
    out
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/).map(Number))
      .map((f) => [f[0]!, f.slice(1)]),
  );
}
