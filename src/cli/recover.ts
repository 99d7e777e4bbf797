/** The CLI side of recovery, shared by `deleted`, `export --deleted` and `mount --offline --deleted`. */
import type { Command } from 'commander';
import { DmHost } from '../dm/host.js';
import { DockerRoot } from '../docker/root.js';
import { DmiError } from '../errors.js';
import { exportDeleted, type DeletedReport, type ExportDeletedResult } from '../recover/deleted.js';
import { mountDeleted, type MountDeletedResult } from '../recover/mount.js';
import { humanBytes } from '../util/units.js';
import { namingOptions } from './options.js';
import { keyValues, printJson, table, type Out } from './render.js';
import { parseDeviceId, parseSize, progressReporter, withInterrupt } from './shared.js';

/** The Docker root to join with: required unless --metadata / --image name the pool (then used if it opens). */
export function openOptionalRoot(
  opts: { root: string; metadata?: string; image?: string[] },
  cmd: Command,
): DockerRoot | null {
  const rootGiven = cmd.getOptionValueSource('root') !== 'default';
  if (rootGiven || (!opts.metadata && !opts.image?.length)) return DockerRoot.open(opts.root);
  try {
    return DockerRoot.open(opts.root);
  } catch {
    return null;
  }
}

export function renderDeleted(r: DeletedReport): string {
  const out: string[] = [];
  out.push(
    keyValues([
      ['metadata', r.metadataFile],
      ['data', r.dataFile ?? '- (not read: free blocks not checked for zeros)'],
      [
        'scan',
        `${r.scan.metadataBlocks} metadata blocks (${r.scan.allocatedBlocks} in use), ${r.scan.btreeNodes} valid btree nodes (${r.scan.freeBtreeNodes} free), ${r.scan.elapsedMs} ms${r.scan.truncated ? ' — TRUNCATED: walk budget exhausted' : ''}`,
      ],
      ['live devices', r.liveDeviceIds.length ? r.liveDeviceIds.join(', ') : 'none'],
    ]),
  );
  out.push('');
  if (r.devices.length === 0) {
    out.push('no deleted thin device found in the stale metadata');
  } else {
    const n = (x: number | null): string => (x === null ? '-' : String(x));
    out.push(
      table(
        [
          'DEVICE',
          'OWNER',
          'VERSION',
          'MAPPED',
          'MAX TIME',
          'SHARED',
          'FREE',
          'DISCARDED',
          'REUSED',
          'CONTESTED',
          'ROOT',
        ],
        r.devices.flatMap((d) =>
          d.versions.map((v) => [
            d.deviceId,
            d.owner,
            `${v.version}${v.newest ? ' (newest)' : ''}`,
            `${v.mappedBlocks} (${humanBytes(v.mappedBytes)})`,
            n(v.highestTime),
            v.blocks.shared,
            v.blocks.free,
            n(v.blocks.discarded),
            v.blocks.reused,
            v.blocks.contested,
            v.root,
          ]),
        ),
      ),
    );
    for (const d of r.devices) {
      const det = d.details[0];
      const facts = [
        det
          ? `details: transaction ${det.transactionId}, created at time ${det.creationTime}, snapshotted at ${det.snapshottedTime} (${d.details.length} record${d.details.length === 1 ? '' : 's'})`
          : 'details: none found',
        `lineage ${d.lineage}`,
        ...(d.rejectedRoots.length ? [`${d.rejectedRoots.length} overwritten version(s)`] : []),
        ...(d.docker ? [`Docker record ${d.docker.file} (size ${d.docker.size})`] : []),
      ];
      out.push(`device ${d.deviceId}: ${facts.join('; ')}`);
    }
  }
  if (r.unattributedCount) {
    out.push(
      `${r.unattributedCount} unattributed mapping tree(s) (top-level entry gone, device id unknown; may be old versions of live devices): ${r.unattributed
        .slice(0, 10)
        .map((t) => `root ${t.root} (${t.mappedBlocks} blocks)`)
        .join(', ')}${r.unattributedCount > 10 ? ', …' : ''}`,
    );
  }
  if (r.detailsOnly.length)
    out.push(`details only (mapping tree gone): ${r.detailsOnly.map((d) => `device ${d.deviceId}`).join(', ')}`);
  return out.join('\n');
}

export function renderExportDeleted(r: ExportDeletedResult): string {
  const b = r.blocks;
  return keyValues([
    ['image', r.image],
    [
      'device',
      `deleted thin id ${r.deviceId}, version ${r.version}${r.newest ? ' (newest)' : ''}; ${r.docker ? `Docker: ${r.docker.owner}` : 'Docker: unknown'}`,
    ],
    [
      'size',
      `${r.size} bytes (${humanBytes(r.size)}) from ${r.sizeFrom === 'docker-record' ? "Docker's record" : r.sizeFrom === 'option' ? '--size' : 'the highest mapped block'}`,
    ],
    [
      'blocks',
      `${b.intact} intact (${b.shared} shared with live devices, ${b.free} free), ${b.discarded ?? '?'} discarded (zeros), ${b.reused} reused by other devices (left as holes)`,
    ],
    ['copied', `${r.copiedBytes} bytes (${humanBytes(r.copiedBytes)}) of ${humanBytes(r.mappedBytes)} mapped`],
    ['elapsed', `${(r.elapsedMs / 1000).toFixed(3)} s`],
    ['sha256', r.sha256],
  ]);
}

export interface ExportDeletedCli {
  root: string;
  deviceId?: string;
  version?: string;
  size?: string;
  metadata?: string;
  data?: string;
  image: string[];
  pool?: string;
  daemonConfig?: string;
  sparse: boolean;
  force?: boolean;
  json?: boolean;
}

/** `export --deleted --device-id N <image>` (called from the export command). */
export async function runExportDeleted(io: Out, image: string, opts: ExportDeletedCli, cmd: Command): Promise<void> {
  const deviceId = parseDeviceId(opts.deviceId);
  if (deviceId === undefined)
    throw new DmiError('USAGE', 'export --deleted needs --device-id N (see dminspect deleted)');
  let version: number | undefined;
  if (opts.version !== undefined) {
    if (!/^[1-9]\d*$/.test(opts.version))
      throw new DmiError(
        'USAGE',
        `--version ${JSON.stringify(opts.version)}: expected a version number from dminspect deleted`,
      );
    version = Number(opts.version);
  }
  const root = openOptionalRoot(opts, cmd);
  const progress = progressReporter(!opts.json && process.stderr.isTTY === true);
  let r: ExportDeletedResult;
  try {
    r = await withInterrupt((signal) =>
      exportDeleted(root, image, {
        ...namingOptions({ root: opts.root, pool: opts.pool, daemonConfig: opts.daemonConfig }),
        metadata: opts.metadata,
        data: opts.data,
        images: opts.image,
        deviceId,
        version,
        size: parseSize(opts.size),
        force: opts.force,
        sparse: opts.sparse,
        onProgress: progress.onProgress,
        signal,
      }),
    );
  } finally {
    progress.finish();
  }
  for (const w of r.warnings) io.err(`warning: ${w}`);
  if (opts.json) printJson(io, r);
  else io.out(renderExportDeleted(r));
}

export interface MountDeletedCli {
  root: string;
  pool?: string;
  daemonConfig?: string;
  metadata?: string;
  data?: string;
  image?: string[];
  version?: string;
  size?: string;
  json?: boolean;
  offline?: boolean;
  stateDir: string;
  workDir?: string;
  keepImage?: boolean;
  name?: string;
  fs?: 'xfs' | 'ext4';
  dryRun?: boolean;
  metadataSnap?: boolean;
}

/** `mount --offline --deleted <thin-id> <dir>` (called from the mount command). */
export async function mountDeletedCli(
  io: Out,
  ref: string,
  dir: string,
  opts: MountDeletedCli,
  cmd: Command,
): Promise<void> {
  if (!opts.offline)
    throw new DmiError(
      'USAGE',
      '--deleted needs --offline: a deleted device is only in the stale metadata, not in the pool',
    );
  if (opts.metadataSnap) throw new DmiError('USAGE', '--metadata-snap does not apply to --deleted');
  const deviceId = parseDeviceId(ref, '<ref> (the deleted thin id)');
  if (deviceId === undefined) throw new DmiError('USAGE', 'mount --offline --deleted <thin-id> <dir>');
  let version: number | undefined;
  if (opts.version !== undefined) {
    if (!/^[1-9]\d*$/.test(opts.version))
      throw new DmiError(
        'USAGE',
        `--version ${JSON.stringify(opts.version)}: expected a version number from dminspect deleted`,
      );
    version = Number(opts.version);
  }
  const root = openOptionalRoot({ root: opts.root, metadata: opts.metadata, image: opts.image }, cmd);
  const progress = progressReporter(!opts.json && process.stderr.isTTY === true);
  let r: MountDeletedResult;
  try {
    r = await withInterrupt((signal) =>
      mountDeleted(root, new DmHost(), {
        ...namingOptions({ root: opts.root, pool: opts.pool, daemonConfig: opts.daemonConfig }),
        metadata: opts.metadata,
        data: opts.data,
        images: opts.image ?? [],
        deviceId,
        version,
        size: parseSize(opts.size),
        dir,
        stateDir: opts.stateDir,
        workDir: opts.workDir,
        keepImage: opts.keepImage,
        name: opts.name,
        fs: opts.fs,
        dryRun: opts.dryRun,
        onProgress: progress.onProgress,
        signal,
      }),
    );
  } finally {
    progress.finish();
  }
  for (const w of r.export?.warnings ?? []) io.err(`warning: ${w}`);
  if (opts.json) {
    printJson(io, {
      dryRun: r.dryRun,
      commands: r.plan.split('\n').filter((l) => !l.startsWith('#')),
      snapshot: r.state,
      rootfs: r.rootfs,
      export: r.export,
    });
    return;
  }
  if (r.dryRun || !r.export) {
    io.out(r.plan);
    return;
  }
  io.out(
    keyValues([
      [
        'image',
        `${r.state.image!.path} on ${r.state.image!.loop} (read-only)${r.state.image!.keep ? ', kept at release' : ', deleted at release'}`,
      ],
      ['sha256', r.export.sha256],
      ['of', `deleted thin device ${deviceId}, version ${r.export.version}${r.export.newest ? ' (newest)' : ''}`],
      [
        'blocks',
        `${r.export.blocks.intact} intact, ${r.export.blocks.discarded ?? '?'} discarded, ${r.export.blocks.reused} reused (holes)`,
      ],
      ['mounted', `${r.state.mountPoint} (${r.state.fsType}, read-only)`],
      ['rootfs', `${r.rootfs} (Docker's layout; a raw thin device's files are at the mount point)`],
      ['release with', `dminspect release ${r.state.mountPoint}`],
    ]),
  );
}
