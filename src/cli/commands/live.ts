import * as path from 'node:path';
import { Option, type Command } from 'commander';
import { DmHost } from '../../dm/host.js';
import { releaseSnapshot, snapshotContainer, snapshots, type LiveResult } from '../../forensics/live.js';
import { DEFAULT_WORK_DIR, mountOffline, type OfflineResult } from '../../forensics/offline.js';
import { DEFAULT_STATE_DIR } from '../../forensics/state.js';
import { DEFAULT_ROOT } from '../../docker/root.js';
import { DmiError } from '../../errors.js';
import { addCommonOptions, namingOptions, openRoot, type CommonOptions } from '../options.js';
import { keyValues, printJson, short, table, type Out } from '../render.js';
import { collect, exportJson, parseDeviceId, progressReporter, withInterrupt } from '../shared.js';
import { mountDeletedCli } from '../recover.js';

interface LiveCliOptions extends CommonOptions {
  id?: string;
  name?: string;
  fs?: 'xfs' | 'ext4';
  force?: boolean;
  activatePool?: boolean;
  dryRun?: boolean;
  stateDir: string;
  keepImage?: boolean;
  offline?: boolean;
  image?: string[];
  workDir?: string;
  metadata?: string;
  data?: string;
  metadataSnap?: boolean;
}

function liveOptions(cmd: Command): Command {
  return addCommonOptions(cmd)
    .option('--id <n>', 'thin id for the snapshot (default: the first free id above next_device_id)')
    .option('--name <name>', 'dm name for the snapshot device (default: dminspect-<container>-<id>)')
    .addOption(new Option('--fs <type>', 'filesystem type when Docker did not record it').choices(['xfs', 'ext4']))
    .option('--force', 'snapshot a device whose record is marked deleted')
    .option(
      '--activate-pool',
      "set up a stopped loop-lvm root's pool (loop devices + Docker's table); release takes it down",
    )
    .option('--dry-run', 'print the exact commands and change nothing')
    .option('--state-dir <dir>', 'where dminspect records what it made', DEFAULT_STATE_DIR);
}

/**
 * The output `mount`, `snapshot` and `mount --offline` share: JSON (the plan's commands, the state, the rootfs, and
 * `extra`), or for a dry run the plan itself. True when that was all there is to print.
 */
function printPlanned(io: Out, r: LiveResult, json: boolean | undefined, extra: Record<string, unknown> = {}): boolean {
  if (json) {
    printJson(io, {
      dryRun: r.dryRun,
      commands: r.plan.split('\n').filter((l) => !l.startsWith('#')),
      snapshot: r.state,
      rootfs: r.rootfs,
      ...extra,
    });
    return true;
  }
  if (r.dryRun) {
    io.out(r.plan);
    return true;
  }
  return false;
}

function render(io: Out, r: LiveResult, json: boolean | undefined): void {
  if (printPlanned(io, r, json)) return;
  const s = r.state;
  io.out(
    keyValues([
      [
        s.snapId === null ? 'device' : 'snapshot',
        s.snapId === null
          ? `/dev/mapper/${s.name} (thin device ${s.origin?.deviceId} itself, read-only, in the read-only pool ${s.pool} dminspect set up)`
          : `/dev/mapper/${s.name} (thin id ${s.snapId} in ${s.pool}, read-only)`,
      ],
      ['of', `${s.container?.name || short(s.container?.id)}: device ${s.origin?.deviceId} (${s.origin?.name})`],
      ...(s.mountPoint
        ? ([
            ['mounted', `${s.mountPoint} (${s.fsType}, read-only)`],
            ['rootfs', r.rootfs],
          ] as [string, string | null][])
        : []),
      ['release with', `dminspect release ${s.mountPoint ?? s.name}`],
    ]),
  );
}

async function mountOfflineCli(io: Out, ref: string, dir: string, opts: LiveCliOptions): Promise<void> {
  if (opts.id !== undefined)
    throw new DmiError('USAGE', '--id makes a snapshot inside the pool; mount --offline makes none');
  if (opts.activatePool)
    throw new DmiError('USAGE', '--activate-pool is for live mounts; mount --offline needs no pool');
  if (opts.image?.length && (opts.metadata !== undefined || opts.data !== undefined)) {
    throw new DmiError(
      'USAGE',
      '--image and --metadata/--data do not go together: the pool comes from the disk images, or the image given is mounted as is',
    );
  }
  const progress = progressReporter(!opts.json && !opts.dryRun && process.stderr.isTTY === true);
  let r: OfflineResult;
  try {
    r = await withInterrupt((signal) =>
      mountOffline(opts.root, ref, new DmHost(), {
        dir,
        stateDir: opts.stateDir,
        ...namingOptions(opts),
        images: opts.image,
        keepImage: opts.keepImage,
        workDir: opts.workDir,
        name: opts.name,
        fs: opts.fs,
        force: opts.force,
        metadata: opts.metadata,
        data: opts.data,
        metadataSnap: opts.metadataSnap,
        dryRun: opts.dryRun,
        onProgress: progress.onProgress,
        signal,
      }),
    );
  } finally {
    progress.finish();
  }
  for (const w of r.export?.warnings ?? []) io.err(`warning: ${w}`);
  if (printPlanned(io, r, opts.json, { export: r.export ? exportJson(r.export) : null })) return;
  const s = r.state;
  io.out(
    keyValues([
      [
        'image',
        `${s.image!.path} on ${s.image!.loop} (read-only)${s.image!.keep ? ', kept at release' : ', deleted at release'}`,
      ],
      ...(r.export ? ([['sha256', r.export.sha256]] as [string, string][]) : []),
      ['of', `${s.container?.name || short(s.container?.id)}${s.origin ? `: device ${s.origin.deviceId}` : ''}`],
      ['mounted', `${s.mountPoint} (${s.fsType}, read-only)`],
      ['rootfs', r.rootfs],
      ['release with', `dminspect release ${s.mountPoint}`],
    ]),
  );
}

export function register(program: Command, io: Out): void {
  liveOptions(
    program
      .command('snapshot')
      .description("snapshot a container's thin device in Docker's pool and activate it read-only")
      .argument('<ref>', 'container id, prefix or name'),
  ).action(async (ref: string, opts: LiveCliOptions) => {
    const r = await snapshotContainer(openRoot(opts), ref, new DmHost(), {
      ...namingOptions(opts),
      ...opts,
      id: parseDeviceId(opts.id, '--id'),
    });
    render(io, r, opts.json);
  });

  liveOptions(
    program
      .command('mount')
      .description(
        "snapshot a container's thin device (or, --offline, export it to an image), mount it read-only at <dir>, print the rootfs path",
      )
      .argument('<ref>', 'container id, prefix or name')
      .argument('<dir>', 'mount point (made if missing; must be empty)'),
  )
    .option(
      '--offline',
      'no device-mapper: export the device to an image file, loop-mount it read-only (see --work-dir)',
    )
    .option(
      '--image <file>',
      '--offline, repeatable: each file is probed. A filesystem (xfs/ext4/btrfs magic at offset 0) is an image made by dminspect export: mounted as is, never deleted (at most one). Anything else must be a disk image (LVM label or partition table) of a direct-lvm host: the device is exported from the thin pool inside it, through LVM',
      collect,
    )
    .option('--keep-image', '--offline: keep the exported work image at release')
    .option('--work-dir <dir>', '--offline: where the work image is exported', DEFAULT_WORK_DIR)
    .option('--metadata <file>', '--offline: pool metadata file (default: <root>/devicemapper/devicemapper/metadata)')
    .option('--data <file>', '--offline: pool data file (default: <root>/devicemapper/devicemapper/data)')
    .option('--metadata-snap', "--offline: read the pool's held metadata snapshot")
    .option(
      '--deleted',
      '--offline: <ref> is the thin id of a DELETED device, rebuilt from stale metadata (see dminspect deleted)',
    )
    .option('--version <n>', '--offline --deleted: which version (default: the newest)')
    .option('--size <bytes>', '--offline --deleted: image size when no Docker record has it')
    .action(
      async (
        ref: string,
        dir: string,
        opts: LiveCliOptions & { deleted?: boolean; version?: string; size?: string },
        cmd: Command,
      ) => {
        if (opts.deleted) return mountDeletedCli(io, ref, dir, opts, cmd);
        if (opts.offline) return mountOfflineCli(io, ref, dir, opts);
        for (const [flag, v] of [
          ['--image', opts.image],
          ['--keep-image', opts.keepImage],
          ['--metadata', opts.metadata],
          ['--data', opts.data],
          ['--metadata-snap', opts.metadataSnap],
        ] as const) {
          if (v !== undefined) throw new DmiError('USAGE', `${flag} applies to mount --offline only`);
        }
        const r = await snapshotContainer(openRoot(opts), ref, new DmHost(), {
          ...namingOptions(opts),
          ...opts,
          id: parseDeviceId(opts.id, '--id'),
          dir,
        });
        render(io, r, opts.json);
      },
    );

  program
    .command('release')
    .description('unmount, remove the snapshot device, delete the snapshot id, take down what dminspect set up')
    .argument('<dir|snapshot>', 'the mount point or the snapshot name')
    .option('--json', 'print JSON')
    .option('--dry-run', 'print the exact commands and change nothing')
    .option('--keep-image', 'offline mounts: keep the exported image file')
    .option('--state-dir <dir>', 'where dminspect records what it made', DEFAULT_STATE_DIR)
    .option('--root <dir>', 'refuse to release what dminspect made for another Docker root', DEFAULT_ROOT)
    .option('--debug', 'show stack traces on errors')
    .action(async (ref: string, opts: LiveCliOptions, cmd: Command) => {
      const root = cmd.getOptionValueSource('root') === 'default' ? undefined : path.resolve(opts.root);
      const r = await releaseSnapshot(ref, new DmHost(), {
        stateDir: opts.stateDir,
        dryRun: opts.dryRun,
        keepImage: opts.keepImage,
        root,
      });
      if (opts.json)
        printJson(io, {
          released: r.released,
          dryRun: !!opts.dryRun,
          commands: r.plan.split('\n').filter((l) => l && !l.startsWith('#')),
          snapshot: r.state,
        });
      else if (!r.state)
        io.out(`nothing recorded for ${path.resolve(ref)} or ${ref} in ${opts.stateDir}: already released`);
      else if (opts.dryRun) io.out(r.plan);
      else io.out(`released ${r.state.name}${r.state.mountPoint ? ` (${r.state.mountPoint})` : ''}`);
    });

  program
    .command('snapshots')
    .description('list the snapshots and mounts dminspect made and has not released')
    .option('--json', 'print JSON')
    .option('--state-dir <dir>', 'where dminspect records what it made', DEFAULT_STATE_DIR)
    .option('--root <dir>', 'only those made for this Docker root (default: all)', DEFAULT_ROOT)
    .action((opts: LiveCliOptions, cmd: Command) => {
      const root = cmd.getOptionValueSource('root') === 'default' ? null : path.resolve(opts.root);
      const list = snapshots(opts.stateDir).filter((s) => root === null || s.root === root);
      if (opts.json) return printJson(io, { snapshots: list });
      io.out(
        table(
          ['NAME', 'MODE', 'CONTAINER', 'POOL', 'THIN ID', 'MOUNT POINT', 'CREATED'],
          list.map((s) => [
            s.name,
            s.mode,
            s.container?.name || short(s.container?.id),
            s.pool,
            s.snapId,
            s.mountPoint,
            s.createdAt,
          ]),
        ),
      );
    });
}
