import type { Command } from 'commander';
import { DEFAULT_ROOT } from '../../docker/root.js';
import { DmiError } from '../../errors.js';
import { exportDevice, resolveExportTarget, type ExportResult } from '../../forensics/export.js';
import { namingOptions } from '../options.js';
import { printJson, type Out } from '../render.js';
import {
  collect,
  exportJson,
  parseDeviceId,
  parseSize,
  progressReporter,
  renderExport,
  withInterrupt,
} from '../shared.js';

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
    .option(
      '--image <file>',
      'direct-lvm: a disk image (or block device) holding the LVM thin pool; its _tmeta and _tdata are read through LVM; repeat for a VG on several disks',
      collect,
      [],
    )
    .option(
      '--pool <name>',
      'direct-lvm: the thin pool in the images (dm name like docker-thinpool, or vg/lv; default: dm.thinpooldev / docker-thinpool / the only one)',
    )
    .option('--daemon-config <file>', 'daemon.json to read dm.thinpooldev from')
    .option('--metadata-snap', "read the pool's held metadata snapshot instead of the live metadata")
    .option('--no-sparse', 'write zeros for unmapped blocks instead of leaving holes')
    .option('--force', 'overwrite an existing image file')
    .option('--json', 'print JSON (shape documented in the README)')
    .option('--debug', 'show stack traces on errors')
    .option(
      '--deleted',
      'export a DELETED thin device (--device-id N) rebuilt from stale metadata; see dminspect deleted',
    )
    .option('--version <n>', '--deleted: which version of the device (default: the newest)')
    .action(
      async (
        first: string,
        second: string | undefined,
        opts: ExportCliOptions & { deleted?: boolean; version?: string },
        cmd: Command,
      ) => {
        if (opts.deleted) {
          if (second !== undefined)
            throw new DmiError('USAGE', 'export --deleted --device-id N <image>: give only the image file');
          // loaded only for --deleted (the recovery modules are not on a plain export's path)
          const { runExportDeleted } = await import('../recover.js');
          return runExportDeleted(io, first, opts, cmd);
        }
        if (opts.version !== undefined) throw new DmiError('USAGE', '--version applies to export --deleted only');
        const deviceId = parseDeviceId(opts.deviceId);
        let ref: string | null = first;
        let image = second;
        if (deviceId !== undefined) {
          if (second !== undefined)
            throw new DmiError('USAGE', 'with --device-id give only the image file, not a reference');
          ref = null;
          image = first;
        }
        if (image === undefined) throw new DmiError('USAGE', 'missing the image file: dminspect export <ref> <image>');
        // The sha256 worker is started by exportDevice once the size is known, for a large image only: started here,
        // before the Docker root is read, it cost every small export a second isolate (the CLI with a 64 KiB image:
        // 1,800 more page faults, 30-65 ms; issue 15).
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
            exportDevice(target, image, {
              metadataSnap: opts.metadataSnap,
              sparse: opts.sparse,
              force: opts.force,
              onProgress: progress.onProgress,
              signal,
            }),
          );
        } finally {
          progress.finish();
        }
        for (const w of r.warnings) io.err(`warning: ${w}`);
        if (opts.json) printJson(io, exportJson(r));
        else io.out(renderExport(r));
      },
    );
}
