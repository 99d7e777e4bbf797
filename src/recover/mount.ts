/**
 * `mount --offline --deleted <thin-id> <dir>`: a deleted device's version (recover/deleted.ts) exported to a work
 * image, attached to a read-only loop device and mounted read-only, recorded like any offline mount (mode
 * `offline`, origin the thin id, no container) so `dminspect release <dir>` unmounts, detaches and deletes the work
 * image unless it is kept.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DockerRoot } from '../docker/root.js';
import { probeFs } from '../dm/fsprobe.js';
import type { DmHost } from '../dm/host.js';
import { executePlan, renderPlan, shellLine, undoSteps } from '../dm/plan.js';
import { DmiError, fsError } from '../errors.js';
import { checkMountPoint, DEFAULT_WORK_DIR, offlineMountPlan, pickLoop, pickWorkName } from '../forensics/offline.js';
import { writeState, type SnapshotState } from '../forensics/state.js';
import { exportDeleted, type ExportDeletedOptions, type ExportDeletedResult } from './deleted.js';

export interface MountDeletedOptions extends ExportDeletedOptions {
  dir: string;
  stateDir: string;
  workDir?: string;
  keepImage?: boolean;
  name?: string;
  fs?: 'xfs' | 'ext4';
  /** Print what would be done (the export and the mount plan); change nothing. */
  dryRun?: boolean;
}

export interface MountDeletedResult {
  dryRun: boolean;
  state: SnapshotState;
  rootfs: string;
  plan: string;
  /** null on a dry run. */
  export: ExportDeletedResult | null;
}

export async function mountDeleted(
  root: DockerRoot | null,
  host: DmHost,
  opts: MountDeletedOptions,
): Promise<MountDeletedResult> {
  if (!opts.dryRun) host.requireRoot('mount --offline --deleted');
  const { dir, makeDir } = checkMountPoint(opts.dir);
  const workDir = path.resolve(opts.workDir ?? DEFAULT_WORK_DIR);
  const name = pickWorkName(
    opts.stateDir,
    workDir,
    opts.name,
    `dminspect-deleted-${opts.deviceId}-v${opts.version ?? 'newest'}`,
  );
  const image = path.join(workDir, `${name}.img`);
  const stateOf = (loop: string, fsType: string, exported: ExportDeletedResult | null): SnapshotState => ({
    version: 1,
    createdAt: new Date().toISOString(),
    name,
    mode: 'offline',
    root: root ? root.root : (exported?.metadata ?? opts.metadata ?? ''),
    container: null,
    origin: {
      hash: '',
      deviceId: opts.deviceId,
      name: `deleted thin device ${opts.deviceId}${exported ? ` version ${exported.version}` : ''}`,
      size: exported?.size ?? opts.size ?? 0,
    },
    pool: null,
    snapId: null,
    mountPoint: dir,
    madeMountPoint: makeDir,
    fsType,
    activatedPool: null,
    image: { path: image, loop, keep: !!opts.keepImage },
  });
  if (opts.dryRun) {
    const fsType = opts.fs ?? 'ext4';
    const src = opts.images?.length
      ? opts.images.flatMap((i) => ['--image', i])
      : [...(opts.metadata ? ['--metadata', opts.metadata] : []), ...(opts.data ? ['--data', opts.data] : [])];
    const args = [
      'dminspect',
      'export',
      '--deleted',
      '--device-id',
      String(opts.deviceId),
      ...(opts.version ? ['--version', String(opts.version)] : []),
      ...(opts.size ? ['--size', String(opts.size)] : []),
      ...src,
      image,
    ];
    const plan = [
      `# export (done in-process): ${shellLine(args)} (filesystem type probed on the image after the export; ${fsType} assumed here)`,
      renderPlan(offlineMountPlan({ image, loop: '/dev/loopN', dir, fsType, makeDir })),
    ].join('\n');
    return {
      dryRun: true,
      state: stateOf('/dev/loopN', fsType, null),
      rootfs: path.join(dir, 'rootfs'),
      plan,
      export: null,
    };
  }
  try {
    fs.mkdirSync(workDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw fsError(e, workDir, 'make the work directory');
  }
  const exported = await exportDeleted(root, image, opts);
  const keep = !!opts.keepImage;
  try {
    const probed = probeFs(image);
    const fsType = probed === 'xfs' || probed === 'ext4' || probed === 'btrfs' ? probed : opts.fs;
    if (!fsType)
      throw new DmiError(
        'UNSUPPORTED',
        `${image}: no xfs, ext4 or btrfs filesystem found on the export (unknown magic; discarded or reused blocks?); pass --fs to try one`,
      );
    const loop = await pickLoop(host);
    const plan = offlineMountPlan({ image, loop, dir, fsType, makeDir });
    const done = await executePlan(plan, host.run);
    const state = stateOf(loop, fsType, exported);
    try {
      writeState(opts.stateDir, state);
    } catch (e) {
      await undoSteps(done, host.run);
      throw e;
    }
    return {
      dryRun: false,
      state,
      rootfs: path.join(dir, 'rootfs'),
      plan: [`# exported ${image} (sha256 ${exported.sha256})`, renderPlan(plan)].join('\n'),
      export: exported,
    };
  } catch (e) {
    if (!keep) fs.rmSync(image, { force: true });
    throw e;
  }
}
