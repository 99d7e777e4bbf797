/**
 * Offline mount: no device-mapper needed. The container's thin device is exported to an image file
 * (inspect/export.ts) — or an image exported before is used (`image`) — attached to a read-only loop
 * device and mounted read-only without journal replay. Recorded in the same state files as live mounts
 * (`mode: 'offline'`, `image: { path, loop, keep }`), so `release` unmounts, detaches the loop device and
 * deletes the work image unless it is kept (an image the user gave is always kept).
 *
 * Work images go to `/var/tmp/dminspect/<name>.img` by default (`workDir`): /var/tmp survives a reboot and
 * is on disk, unlike /tmp which may be a tmpfs in RAM; the image is sparse, so it takes the container's
 * mapped bytes, not its virtual size.
 *
 * `images` are sorted by what they hold (classifyImages): a file with a filesystem magic at offset 0 is an
 * image exported before (at most one: mounted as is); anything else is a disk image of a direct-lvm host (an
 * LVM label or a partition table), from which the device is exported through LVM's extents.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { prefixFromStat, thinDeviceName } from '../docker/naming.js';
import { probeFs, probeFsBuffer, PROBE_BYTES, type FsType } from '../dm/fsprobe.js';
import type { DmHost } from '../dm/host.js';
import { freeLoopDevices } from '../dm/loop.js';
import {
  executePlan,
  renderPlan,
  shellLine,
  stepFailure,
  undoSteps,
  type Executed,
  type Plan,
  type Step,
} from '../dm/plan.js';
import { DmiError, fsError } from '../errors.js';
import { labelSector } from '../lvm/label.js';
import type { CopyProgress } from '../thin/copy.js';
import { exportDevice, resolveExportTarget, type ExportResult, type ExportTargetOptions } from './export.js';
import { mountSteps } from './plans.js';
import { DockerRoot } from '../docker/root.js';
import { poolSourceArgs } from '../pool-source/index.js';
import { resolveContainer } from '../model/resolve.js';
import { checkSnapshotName, readState, writeState, type SnapshotState } from './state.js';

export const DEFAULT_WORK_DIR = '/var/tmp/dminspect';

export interface OfflineOptions extends ExportTargetOptions {
  dir: string;
  stateDir: string;
  /** An image exported before: used as is, never deleted. */
  image?: string;
  /**
   * Files given with --image: each is probed (classifyImages): an exported image (filesystem at offset 0, at
   * most one) is mounted as is; disk images (LVM) hold a direct-lvm pool the device is exported from.
   */
  images?: string[];
  /** Keep the work image at release. */
  keepImage?: boolean;
  /** Where work images go (default /var/tmp/dminspect). */
  workDir?: string;
  /** State name (default dminspect-offline-<container>-<n>). */
  name?: string;
  /** Filesystem type when the probe finds none. */
  fs?: FsType;
  /** Export a device whose record is marked deleted. */
  force?: boolean;
  metadataSnap?: boolean;
  dryRun?: boolean;
  onProgress?: (p: CopyProgress) => void;
  signal?: AbortSignal;
}

export interface OfflineResult {
  dryRun: boolean;
  plan: string;
  state: SnapshotState;
  rootfs: string;
  export: ExportResult | null;
}

const LOOP_TRIES = 8;

export interface ClassifiedImages {
  /** The image exported before (a filesystem at offset 0), or null. */
  exported: string | null;
  exportedFs: FsType | null;
  /** Disk images of a direct-lvm host (an LVM label in the first 4 sectors, or a partition table). */
  disks: string[];
}

/**
 * Sorts `--image` files: a filesystem magic at offset 0 (xfs, ext4, btrfs) makes an exported image — at most
 * one; an LVM label (`LABELONE` in sectors 0-3) or a partition table (MBR 0x55AA / GPT `EFI PART`) a disk
 * image. Anything else is UNSUPPORTED naming the file — unless it is the only file and `fs` is given (the
 * filesystem type to try on an exported image whose magic is not recognised).
 */
export function classifyImages(files: string[], opts: { fs?: FsType } = {}): ClassifiedImages {
  const out: ClassifiedImages = { exported: null, exportedFs: null, disks: [] };
  for (const f of files) {
    const file = path.resolve(f);
    let head: Buffer;
    let st: fs.Stats;
    try {
      const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      try {
        st = fs.fstatSync(fd);
        if (st.isDirectory())
          throw new DmiError('BAD_INPUT', `${file}: is a directory, expected an image file`, { path: file });
        head = Buffer.alloc(PROBE_BYTES);
        let n = 0;
        while (n < head.length) {
          const got = fs.readSync(fd, head, n, head.length - n, n);
          if (got === 0) break;
          n += got;
        }
        head = head.subarray(0, n);
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      throw fsError(e, file);
    }
    const fsType = probeFsBuffer(head);
    if (fsType) {
      if (out.exported)
        throw new DmiError(
          'USAGE',
          `--image ${out.exported} and ${file} are both filesystem images: mount one at a time`,
        );
      if (!st.isFile())
        throw new DmiError('BAD_INPUT', `${file}: not a regular file (expected an image made by dminspect export)`);
      out.exported = file;
      out.exportedFs = fsType;
      continue;
    }
    const mbr = head.length >= 512 && head.readUInt16LE(510) === 0xaa55;
    const gpt = head.length >= 520 && head.toString('latin1', 512, 520) === 'EFI PART';
    if (labelSector(head.subarray(0, 2048)) !== null || mbr || gpt) {
      out.disks.push(file);
      continue;
    }
    if (opts.fs && files.length === 1 && st.isFile()) {
      out.exported = file;
      continue;
    }
    throw new DmiError(
      'UNSUPPORTED',
      `${file}: neither a filesystem image (no xfs, ext4 or btrfs magic at offset 0; pass --fs to try one) nor a disk image (no LVM label, no partition table)`,
      { path: file },
    );
  }
  if (out.exported && out.disks.length > 0) {
    throw new DmiError(
      'USAGE',
      `--image ${out.exported} is an exported filesystem image and ${out.disks.join(', ')} ${out.disks.length === 1 ? 'is a disk image' : 'are disk images'}: give the exported image alone, or the disk images`,
    );
  }
  return out;
}

/** Attach `image` read-only to `loop`; the undo detaches it. */
export function loopStep(loop: string, image: string): Step {
  return {
    what: 'attach the image to a read-only loop device',
    argv: ['losetup', '--read-only', loop, image],
    undo: ['losetup', '-d', loop],
  };
}

/** mkdir (when needed), losetup -r, mount read-only: the plan of an offline mount once the image exists. */
export function offlineMountPlan(i: {
  image: string;
  loop: string;
  dir: string;
  fsType: FsType;
  makeDir: boolean;
}): Plan {
  const ms = mountSteps({ device: i.loop, dir: i.dir, fsType: i.fsType, makeDir: i.makeDir });
  return { steps: [...ms.slice(0, -1), loopStep(i.loop, i.image), ms[ms.length - 1]!] };
}

/** A free loop device not in `avoid`: the first free /dev/loopN, else what `losetup -f` names (CONFLICT if none). */
export async function pickLoop(host: DmHost, avoid: Set<string> = new Set()): Promise<string> {
  const free = freeLoopDevices(avoid.size + 1).filter((l) => !avoid.has(l));
  if (free[0]) return free[0];
  // No free node in /dev: `losetup -f` names (and, with loop-control, creates) one.
  const r = await host.run(['losetup', '-f']);
  const name = r.stdout.trim();
  if (r.code !== 0 || !/^\/dev\/loop\d+$/.test(name) || avoid.has(name)) {
    throw new DmiError(
      'CONFLICT',
      `no free loop device${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').pop()}` : ''}`,
    );
  }
  return name;
}

/** The mount point: an empty directory, or one to make (`makeDir`); CONFLICT otherwise. */
export function checkMountPoint(mountPoint: string): { dir: string; makeDir: boolean } {
  const dir = path.resolve(mountPoint);
  if (!fs.existsSync(dir)) return { dir, makeDir: true };
  if (!fs.statSync(dir).isDirectory()) throw new DmiError('CONFLICT', `${dir}: not a directory`);
  if (fs.readdirSync(dir).length > 0) throw new DmiError('CONFLICT', `${dir}: mount point is not empty`);
  return { dir, makeDir: false };
}

/**
 * The state name of an offline mount, which also names its work image: `given` (checked, and not in use), else
 * `<prefix>-<n>` with the first n that neither the state dir nor the work dir has.
 */
export function pickWorkName(stateDir: string, workDir: string, given: string | undefined, prefix: string): string {
  if (given !== undefined) {
    const name = checkSnapshotName(given);
    if (readState(stateDir, name))
      throw new DmiError(
        'CONFLICT',
        `${name}: dminspect already has a snapshot or mount with this name (release it first)`,
      );
    return name;
  }
  let n = 1;
  while (readState(stateDir, `${prefix}-${n}`) || fs.existsSync(path.join(workDir, `${prefix}-${n}.img`))) n++;
  return checkSnapshotName(`${prefix}-${n}`);
}

export async function mountOffline(
  rootDir: string,
  ref: string,
  host: DmHost,
  opts: OfflineOptions,
): Promise<OfflineResult> {
  if (!opts.dryRun) host.requireRoot('mount --offline');
  const { dir, makeDir } = checkMountPoint(opts.dir);

  // What to mount: an image given, or the device exported now.
  let given: string | null = null;
  let container: SnapshotState['container'] = null;
  let origin: SnapshotState['origin'] = null;
  let target: ReturnType<typeof resolveExportTarget> | null = null;
  const files = [...(opts.image !== undefined ? [opts.image] : []), ...(opts.images ?? [])];
  const classified =
    files.length > 0 ? classifyImages(files, { fs: opts.fs }) : { exported: null, exportedFs: null, disks: [] };
  if (
    classified.exported &&
    (opts.keepImage || opts.metadata !== undefined || opts.data !== undefined || opts.metadataSnap)
  ) {
    throw new DmiError(
      'USAGE',
      `--image ${classified.exported} is an exported image (a filesystem at offset 0), mounted as is: --keep-image, --metadata, --data and --metadata-snap do not apply`,
    );
  }
  if (classified.exported !== null) {
    given = classified.exported;
    let st: fs.Stats;
    try {
      st = fs.statSync(given);
    } catch (e) {
      throw fsError(e, given);
    }
    if (!st.isFile())
      throw new DmiError('BAD_INPUT', `${given}: not a regular file (expected an image made by dminspect export)`);
    const c = resolveContainer(DockerRoot.open(rootDir), ref);
    container = { id: c.id, name: c.name };
  } else {
    target = resolveExportTarget(rootDir, ref, { ...opts, images: classified.disks });
    if (target.record?.deleted && !opts.force) {
      throw new DmiError(
        'CONFLICT',
        `${target.record.file}: the device is marked deleted (deferred deletion pending); pass --force to export it anyway`,
      );
    }
    container = target.container;
    let name = `device-${target.deviceId}`;
    if (target.hash !== null && target.root) {
      try {
        name = thinDeviceName(prefixFromStat(target.root), target.hash);
      } catch {
        // the name is informative only
      }
    }
    origin = { hash: target.hash ?? '', deviceId: target.deviceId, name, size: target.size };
  }

  // The state name, and the work image named after it.
  const workDir = path.resolve(opts.workDir ?? DEFAULT_WORK_DIR);
  const tag = (container?.id ?? target?.hash ?? `id${target?.deviceId ?? ''}`).slice(0, 12) || 'base';
  const name = pickWorkName(opts.stateDir, workDir, opts.name, `dminspect-offline-${tag}`);
  const image = given ?? path.join(workDir, `${name}.img`);
  const keep = given !== null || !!opts.keepImage;
  if (!given && fs.existsSync(image))
    throw new DmiError('CONFLICT', `${image}: a work image with this name exists already`);

  const stateOf = (loop: string | null, fsType: FsType): SnapshotState => ({
    version: 1,
    createdAt: new Date().toISOString(),
    name,
    mode: 'offline',
    root: target?.root ?? path.resolve(rootDir),
    container,
    origin,
    pool: null,
    snapId: null,
    mountPoint: dir,
    madeMountPoint: makeDir,
    fsType,
    activatedPool: null,
    image: { path: image, loop, keep },
  });

  if (opts.dryRun) {
    let fsType: FsType = opts.fs ?? 'xfs';
    let note = '';
    if (given) fsType = probeFs(given) ?? fsType;
    else {
      const recorded = DockerRoot.open(rootDir).recordSet().deviceSet?.baseDeviceFilesystem;
      if (!opts.fs && (recorded === 'xfs' || recorded === 'ext4')) fsType = recorded;
      note = ` (filesystem type probed on the image after the export; ${fsType} assumed here)`;
    }
    const loop = '/dev/loopN';
    const lines: string[] = [];
    if (target) {
      const source = poolSourceArgs(target.pool);
      const args = [
        'dminspect',
        'export',
        '--device-id',
        String(target.deviceId),
        '--size',
        String(target.size),
        ...source,
        ...(opts.metadataSnap ? ['--metadata-snap'] : []),
        image,
      ];
      lines.push(`# export (done in-process): ${shellLine(args)}${note}`);
    }
    lines.push(renderPlan(offlineMountPlan({ image, loop, dir, fsType, makeDir })));
    return {
      dryRun: true,
      plan: lines.join('\n'),
      state: stateOf(loop, fsType),
      rootfs: path.join(dir, 'rootfs'),
      export: null,
    };
  }

  let exported: ExportResult | null = null;
  if (target) {
    try {
      fs.mkdirSync(workDir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw fsError(e, workDir, 'make the work directory');
    }
    exported = await exportDevice(target, image, {
      metadataSnap: opts.metadataSnap,
      onProgress: opts.onProgress,
      signal: opts.signal,
    });
  }
  const dropImage = () => {
    if (!keep) fs.rmSync(image, { force: true });
  };
  try {
    const probed = probeFs(image);
    const fsType = probed === 'xfs' || probed === 'ext4' || probed === 'btrfs' ? probed : opts.fs;
    if (!fsType)
      throw new DmiError(
        'UNSUPPORTED',
        `${image}: no xfs, ext4 or btrfs filesystem found on the image (unknown magic); pass --fs to try one`,
      );
    const tried = new Set<string>();
    for (let attempt = 0; ; attempt++) {
      const loop = await pickLoop(host, tried);
      const plan = offlineMountPlan({ image, loop, dir, fsType, makeDir });
      const text = [
        ...(exported ? [`# exported ${exported.image} (sha256 ${exported.sha256})`] : []),
        renderPlan(plan),
      ].join('\n');
      let done: Executed[];
      try {
        done = await executePlan(plan, host.run);
      } catch (e) {
        // Another process took the loop device between the pick and losetup: take the next one.
        const failed = stepFailure(e);
        if (
          failed &&
          failed.step[0] === 'losetup' &&
          /busy|in use|failed to set up loop/i.test(failed.stderr) &&
          attempt < LOOP_TRIES
        ) {
          tried.add(loop);
          continue;
        }
        throw e;
      }
      const state = stateOf(loop, fsType);
      try {
        writeState(opts.stateDir, state);
      } catch (e) {
        await undoSteps(done, host.run); // without a state file, release could not find the mount
        throw e;
      }
      return { dryRun: false, plan: text, state, rootfs: path.join(dir, 'rootfs'), export: exported };
    }
  } catch (e) {
    dropImage();
    throw e;
  }
}
