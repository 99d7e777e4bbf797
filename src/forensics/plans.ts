/**
 * Pure plan builders for live forensics: snapshot a thin device inside its pool, activate the snapshot
 * read-only, mount it read-only; and the release that undoes it. No I/O here: inputs are facts gathered
 * beforehand, outputs are plans (dm/plan.ts).
 */
import type { Plan, Step } from '../dm/plan.js';
import type { FsType } from '../dm/fsprobe.js';
import { readOnlyMountOptions } from '../dm/fsprobe.js';

export interface SnapshotInput {
  pool: string;
  origin: { name: string; deviceId: number; active: boolean };
  snapId: number;
  snapName: string;
  /** Virtual size in 512-byte sectors (Docker's record size / 512). */
  sectors: number;
}

export function createSnapMessage(snapId: number, originId: number): string {
  return `create_snap ${snapId} ${originId}`;
}

/** Suspend the origin when active, create_snap, always resume, activate the snapshot read-only. */
export function snapshotSteps(i: SnapshotInput): Step[] {
  const steps: Step[] = [];
  if (i.origin.active) {
    // --nolockfs: suspend waits for in-flight I/O but does not freeze the filesystem on the origin — a freeze
    // writes to it (ext4 commits its superblock and journal), and the origin is evidence. The snapshot is then
    // crash-consistent, which the read-only mount (no journal replay) reads as it is.
    steps.push({
      what: 'suspend the origin (no filesystem freeze) so create_snap sees no I/O in flight',
      argv: ['dmsetup', 'suspend', '--nolockfs', i.origin.name],
      undo: ['dmsetup', 'resume', i.origin.name],
    });
  }
  steps.push({
    what: `create thin snapshot ${i.snapId} of device ${i.origin.deviceId}`,
    argv: ['dmsetup', 'message', i.pool, '0', createSnapMessage(i.snapId, i.origin.deviceId)],
    undo: ['dmsetup', 'message', i.pool, '0', `delete ${i.snapId}`],
  });
  if (i.origin.active)
    steps.push({ what: 'resume the origin', argv: ['dmsetup', 'resume', i.origin.name], undo: null });
  steps.push({
    what: 'activate the snapshot read-only',
    argv: [
      'dmsetup',
      'create',
      i.snapName,
      '--readonly',
      '--table',
      `0 ${i.sectors} thin /dev/mapper/${i.pool} ${i.snapId}`,
    ],
    undo: ['dmsetup', 'remove', i.snapName],
  });
  return steps;
}

export interface MountInput {
  device: string;
  dir: string;
  fsType: FsType;
  /** The mount point does not exist yet: make it, and remove it on undo. */
  makeDir: boolean;
}

export function mountSteps(m: MountInput): Step[] {
  const steps: Step[] = [];
  if (m.makeDir) steps.push({ what: 'make the mount point', argv: ['mkdir', m.dir], undo: ['rmdir', m.dir] });
  steps.push({
    what: `mount read-only (${m.fsType}, no journal replay)`,
    argv: ['mount', '-t', m.fsType, '-o', readOnlyMountOptions(m.fsType), m.device, m.dir],
    undo: ['umount', m.dir],
  });
  return steps;
}

export interface LoopPoolInput {
  pool: string;
  dataFile: string;
  metadataFile: string;
  dataLoop: string;
  metadataLoop: string;
  /** Data size in 512-byte sectors (data file size / 512). */
  dataSectors: number;
  blockSectors: number;
}

/**
 * Docker's own loop-lvm pool of a stopped root, set up again READ-ONLY: the metadata file on a read-only loop
 * device and Docker's table with the `read_only` feature, so the kernel never writes the pool metadata (the
 * data device is opened read-write by the kernel, but nothing writes it: the pool is read-only and only
 * read-only thin devices are activated). No snapshot is needed: nothing else can write the origin.
 */
export function activatePoolSteps(p: LoopPoolInput): Step[] {
  return [
    {
      what: 'attach the pool data file',
      argv: ['losetup', p.dataLoop, p.dataFile],
      undo: ['losetup', '-d', p.dataLoop],
    },
    {
      what: 'attach the pool metadata file read-only',
      argv: ['losetup', '--read-only', p.metadataLoop, p.metadataFile],
      undo: ['losetup', '-d', p.metadataLoop],
    },
    {
      what: "create the pool read-only with Docker's table",
      argv: [
        'dmsetup',
        'create',
        p.pool,
        '--table',
        `0 ${p.dataSectors} thin-pool ${p.metadataLoop} ${p.dataLoop} ${p.blockSectors} 32768 2 skip_block_zeroing read_only`,
      ],
      undo: ['dmsetup', 'remove', p.pool],
    },
  ];
}

/** The origin itself, activated read-only in a read-only pool dminspect set up. */
export function activateOriginSteps(i: { pool: string; deviceId: number; name: string; sectors: number }): Step[] {
  return [
    {
      what: `activate thin device ${i.deviceId} read-only (read-only pool: no snapshot needed)`,
      argv: [
        'dmsetup',
        'create',
        i.name,
        '--readonly',
        '--table',
        `0 ${i.sectors} thin /dev/mapper/${i.pool} ${i.deviceId}`,
      ],
      undo: ['dmsetup', 'remove', i.name],
    },
  ];
}

export interface ReleaseInput {
  mountPoint: string | null;
  madeMountPoint: boolean;
  snapName: string | null;
  pool: string | null;
  snapId: number | null;
  activatedPool: { name: string; loops: string[] } | null;
  imageLoop: string | null;
}

/** Every step tolerates "already gone", so release is idempotent and safe when part of it is missing. */
export function releasePlan(r: ReleaseInput): Plan {
  const steps: Step[] = [];
  if (r.mountPoint)
    steps.push({
      what: 'unmount',
      argv: ['umount', r.mountPoint],
      undo: null,
      okIf: ['not mounted', 'no mount point specified', 'No such file or directory'],
    });
  if (r.madeMountPoint && r.mountPoint)
    steps.push({
      what: 'remove the mount point dminspect made',
      argv: ['rmdir', r.mountPoint],
      undo: null,
      okIf: ['No such file or directory'],
    });
  if (r.snapName)
    steps.push({
      what: 'remove the snapshot device',
      argv: ['dmsetup', 'remove', r.snapName],
      undo: null,
      okIf: ['No such device or address', 'not found', 'does not exist'],
    });
  if (r.pool !== null && r.snapId !== null) {
    steps.push({
      what: `delete thin snapshot ${r.snapId} from the pool`,
      argv: ['dmsetup', 'message', r.pool, '0', `delete ${r.snapId}`],
      undo: null,
      okIf: ['No data available', 'No such device or address'],
    });
  }
  if (r.imageLoop)
    steps.push({
      what: 'detach the image loop device',
      argv: ['losetup', '-d', r.imageLoop],
      undo: null,
      okIf: ['No such device or address', 'No such device'],
    });
  if (r.activatedPool) {
    steps.push({
      what: 'remove the pool dminspect activated',
      argv: ['dmsetup', 'remove', r.activatedPool.name],
      undo: null,
      okIf: ['No such device or address', 'not found'],
    });
    for (const l of r.activatedPool.loops)
      steps.push({
        what: 'detach a pool loop device',
        argv: ['losetup', '-d', l],
        undo: null,
        okIf: ['No such device or address', 'No such device'],
      });
  }
  return { steps };
}
