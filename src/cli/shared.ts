/** What the commands share beyond options and rendering: option value parsers, the progress bar, interrupts, export output. */
import * as path from 'node:path';
import type { Command } from 'commander';
import { DmHost } from '../dm/host.js';
import type { DockerRoot } from '../docker/root.js';
import { DmiError } from '../errors.js';
import { DEFAULT_STATE_DIR } from '../forensics/state.js';
import type { PoolSourceOptions } from '../pool-source/index.js';
import { poolMayBeRead } from '../pool-source/presence.js';
import type { ExportResult } from '../forensics/export.js';
import type { CopyProgress } from '../thin/copy.js';
import { MAX_THIN_DEVICE_ID } from '../thin/details.js';
import { humanBytes } from '../util/units.js';
import { namingOptions, type CommonOptions } from './options.js';
import { keyValues, short } from './render.js';

/** A repeatable option's values (`--image A --image B`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A thin device id option (`--device-id`, `--id`): 0..MAX_THIN_DEVICE_ID. */
export function parseDeviceId(v: string | undefined, flag = '--device-id'): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) > MAX_THIN_DEVICE_ID)
    throw new DmiError('USAGE', `${flag} ${JSON.stringify(v)}: expected a thin device id 0..${MAX_THIN_DEVICE_ID}`);
  return Number(v);
}

export function parseSize(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n))
    throw new DmiError('USAGE', `--size ${JSON.stringify(v)}: expected a number of bytes`);
  if (n % 512 !== 0) throw new DmiError('USAGE', `--size ${n}: not a multiple of 512 bytes`);
  return n;
}

function clock(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  s = Math.round(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** One progress line: bar, percent, bytes, rate, ETA. */
export function progressLine(p: CopyProgress, elapsedMs: number, width = 24): string {
  const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
  const filled = Math.round(frac * width);
  const rate = elapsedMs > 0 ? (p.done / elapsedMs) * 1000 : 0;
  const eta = rate > 0 ? (p.total - p.done) / rate : NaN;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${humanBytes(p.done)} / ${humanBytes(p.total)}  ${humanBytes(Math.round(rate))}/s  ETA ${clock(eta)}`;
}

/** A progress bar on a TTY stream (redrawn at most 10 times a second), or nothing. */
export function progressReporter(
  enabled: boolean,
  stream: NodeJS.WriteStream = process.stderr,
): { onProgress?: (p: CopyProgress) => void; finish: () => void } {
  if (!enabled) return { finish: () => {} };
  const t0 = Date.now();
  let last = 0;
  let shown = false;
  return {
    onProgress: (p) => {
      const now = Date.now();
      if (now - last < 100 && p.done < p.total) return;
      last = now;
      shown = true;
      stream.write(`\r${progressLine(p, now - t0)}\x1b[K`);
    },
    finish: () => {
      if (shown) stream.write('\r\x1b[K');
    },
  };
}

/** Aborts on the first SIGINT/SIGTERM while `fn` runs (the export then removes its partial image). */
export async function withInterrupt<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await fn(ac.signal);
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
}

export function exportJson(r: ExportResult): Record<string, unknown> {
  return {
    image: r.image,
    size: r.size,
    sha256: r.sha256,
    device: r.device,
    mappedBytes: r.mappedBytes,
    copiedBytes: r.copiedBytes,
    holes: r.holes,
    elapsedMs: r.elapsedMs,
    holeBytes: r.holeBytes,
    sparse: r.sparse,
    container: r.container,
    metadata: r.metadata,
    data: r.data,
    metadataSnap: r.metadataSnap,
    warnings: r.warnings,
  };
}

export function renderExport(r: ExportResult): string {
  const rate = r.elapsedMs > 0 ? `${humanBytes(Math.round((r.size / r.elapsedMs) * 1000))}/s` : '-';
  const owner = r.container ? `, container ${r.container.name || short(r.container.id)}` : '';
  const hash = r.device.hash === null ? 'no Docker record' : r.device.hash === '' ? 'base' : `hash ${r.device.hash}`;
  return keyValues([
    ['image', `${r.image} (${r.sparse ? 'sparse' : 'not sparse'})`],
    ['device', `thin id ${r.device.deviceId} (${hash}${owner})`],
    ['size', `${r.size} bytes (${humanBytes(r.size)})`],
    [
      'copied',
      `${r.copiedBytes} bytes (${humanBytes(r.copiedBytes)}) of ${humanBytes(r.mappedBytes)} mapped; ${r.holes} hole${r.holes === 1 ? '' : 's'} (${humanBytes(r.holeBytes)})`,
    ],
    ['elapsed', `${(r.elapsedMs / 1000).toFixed(3)} s (${rate})`],
    ['sha256', r.sha256],
  ]);
}

/** The options of a command that adds pool usage to its Docker view (`container`, `devices`). */
export interface PoolUsageOptions extends CommonOptions {
  metadata?: string;
  image: string[];
  live: boolean;
  stateDir: string;
}

/** Adds the pool-usage options (`what`: how the command shows usage, "figures" or "columns"). */
export function addPoolUsageOptions(cmd: Command, what: string): Command {
  return cmd
    .option('--metadata <file>', `pool metadata for the usage ${what} (default: the loop-lvm file of --root)`)
    .option('--image <file>', 'direct-lvm: a disk image holding the LVM thin pool (repeatable)', collect, [])
    .option('--no-live', 'read the pool files as they lie on disk even when the kernel has the pool active')
    .option('--state-dir <dir>', 'where dminspect records its metadata-snapshot hold (live pool)', DEFAULT_STATE_DIR);
}

/**
 * How a Docker view gets its pool usage: `attach` on this thread, or in a held read (a live pool) the worker thread's
 * `task.fn` of `task.module`, called with the same arguments and the held view last.
 */
export interface PoolUsageReader<B> {
  attach: (base: B, root: DockerRoot, poolOpts: PoolSourceOptions) => B;
  task: { module: string; fn: string };
}

/**
 * `base` with the pool's usage attached: a live pool is read through a held metadata snapshot (pool-source/live.ts),
 * else the files. `base` as it is when the root has no pool to read (`poolMayBeRead`): then neither `reader` (the
 * usage module: the pool readers) nor live.ts is loaded.
 */
export async function withPoolUsage<B>(
  root: DockerRoot,
  opts: PoolUsageOptions,
  base: B,
  reader: () => Promise<PoolUsageReader<B>>,
): Promise<B> {
  const poolOpts = { ...namingOptions(opts), metadata: opts.metadata, images: opts.image };
  const host = new DmHost();
  if (!poolMayBeRead(root.root, { ...poolOpts, live: opts.live }, host)) return base;
  const [{ withRootPool }, { attach, task }] = await Promise.all([import('../pool-source/live.js'), reader()]);
  return withRootPool(
    host,
    root.root,
    { ...poolOpts, live: opts.live, stateDir: path.resolve(opts.stateDir) },
    (loc, held) => attach(base, root, { ...poolOpts, ...(loc ? { location: loc, metadataSnap: held } : {}) }),
    (loc) => ({ ...task, args: [base, root.root, { ...poolOpts, location: loc }] }),
  );
}
