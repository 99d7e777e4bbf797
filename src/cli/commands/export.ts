import type { Command } from 'commander';
import { DEFAULT_ROOT } from '../../docker/root.js';
import { DmiError } from '../../errors.js';
import { exportDevice, resolveExportTarget, type ExportResult } from '../../inspect/export.js';
import type { CopyProgress } from '../../thin/copy.js';
import { humanBytes } from '../../util/units.js';
import { namingOptions } from '../options.js';
import { keyValues, printJson, short, type Out } from '../render.js';
import { runExportDeleted } from './deleted.js';
import { collect } from './pool.js';

interface ExportCliOptions {
  root: string;
  deviceId?: string;
  size?: string;
  metadata?: string;
  data?: string;
  image: string[];
  pool?: string;
  daemonConfig?: string;
  metadataSnap?: boolean;
  sparse: boolean;
  force?: boolean;
  json?: boolean;
  debug?: boolean;
}

export function parseDeviceId(v: string | undefined, flag = '--device-id'): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) > 0xffffff) throw new DmiError('USAGE', `${flag} ${JSON.stringify(v)}: expected a thin device id 0..16777215`);
  return Number(v);
}

export function parseSize(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new DmiError('USAGE', `--size ${JSON.stringify(v)}: expected a number of bytes`);
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
export function progressReporter(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): { onProgress?: (p: CopyProgress) => void; finish: () => void } {
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
    ['copied', `${r.copiedBytes} bytes (${humanBytes(r.copiedBytes)}) of ${humanBytes(r.mappedBytes)} mapped; ${r.holes} hole${r.holes === 1 ? '' : 's'} (${humanBytes(r.holeBytes)})`],
    ['elapsed', `${(r.elapsedMs / 1000).toFixed(3)} s (${rate})`],
    ['sha256', r.sha256],
  ]);
}

export function register(program: Command, io: Out): void {
  program
    .command('export')
    .description("write a container's thin device to an image file, offline, from the pool's metadata and data files")
    .argument('<ref>', 'container id, unique prefix or name, or a device hash; with --device-id, the image file')
    .argument('[image]', 'the image file to write')
    .option('--root <dir>', 'Docker root directory', DEFAULT_ROOT)
    .option('--device-id <n>', 'export thin device N (size from the Docker record with that device_id, or --size)')
    .option('--size <bytes>', 'image size in bytes (default: the Docker record size)')
    .option('--metadata <file>', 'pool metadata file or device (default: <root>/devicemapper/devicemapper/metadata)')
    .option('--data <file>', 'pool data file or device (default: <root>/devicemapper/devicemapper/data)')
    .option('--image <file>', 'direct-lvm: a disk image (or block device) holding the LVM thin pool; its _tmeta and _tdata are read through LVM; repeat for a VG on several disks', collect, [])
    .option('--pool <name>', 'direct-lvm: the thin pool in the images (dm name like docker-thinpool, or vg/lv; default: dm.thinpooldev / docker-thinpool / the only one)')
    .option('--daemon-config <file>', 'daemon.json to read dm.thinpooldev from')
    .option('--metadata-snap', "read the pool's held metadata snapshot instead of the live metadata")
    .option('--no-sparse', 'write zeros for unmapped blocks instead of leaving holes')
    .option('--force', 'overwrite an existing image file')
    .option('--json', 'print JSON (shape documented in the README)')
    .option('--debug', 'show stack traces on errors')
    .option('--deleted', 'export a DELETED thin device (--device-id N) rebuilt from stale metadata; see dminspect deleted')
    .option('--version <n>', '--deleted: which version of the device (default: the newest)')
    .action(async (first: string, second: string | undefined, opts: ExportCliOptions & { deleted?: boolean; version?: string }, cmd: Command) => {
      if (opts.deleted) {
        if (second !== undefined) throw new DmiError('USAGE', 'export --deleted --device-id N <image>: give only the image file');
        return runExportDeleted(io, first, opts, cmd);
      }
      if (opts.version !== undefined) throw new DmiError('USAGE', '--version applies to export --deleted only');
      const deviceId = parseDeviceId(opts.deviceId);
      let ref: string | null = first;
      let image = second;
      if (deviceId !== undefined) {
        if (second !== undefined) throw new DmiError('USAGE', 'with --device-id give only the image file, not a reference');
        ref = null;
        image = first;
      }
      if (image === undefined) throw new DmiError('USAGE', 'missing the image file: dminspect export <ref> <image>');
      const target = resolveExportTarget(opts.root, ref, {
        ...namingOptions(opts),
        deviceId,
        size: parseSize(opts.size),
        metadata: opts.metadata,
        data: opts.data,
        images: opts.image,
      });
      const progress = progressReporter(!opts.json && process.stderr.isTTY === true);
      let r: ExportResult;
      try {
        r = await withInterrupt((signal) =>
          exportDevice(target, image, { metadataSnap: opts.metadataSnap, sparse: opts.sparse, force: opts.force, onProgress: progress.onProgress, signal }),
        );
      } finally {
        progress.finish();
      }
      for (const w of r.warnings) io.err(`warning: ${w}`);
      if (opts.json) printJson(io, exportJson(r));
      else io.out(renderExport(r));
    });
}
