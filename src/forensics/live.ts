/**
 * Live forensics: snapshot a container's thin device inside Docker's pool, activate the snapshot read-only,
 * mount it read-only, and release all of it. The container's own device is never written: the snapshot is
 * made with create_snap (the origin is suspended around it when active) and only the snapshot is activated,
 * read-only. The pool's transaction id is never touched.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DockerRoot } from '../docker/root.js';
import { resolveNaming, thinDeviceName, type NamingOptions } from '../docker/naming.js';
import { requireFs, probeFs, type FsType } from '../dm/fsprobe.js';
import type { DmHost } from '../dm/host.js';
import { freeLoopDevices } from '../dm/loop.js';
import { executePlan, renderPlan, stepFailure, type Plan } from '../dm/plan.js';
import { DmiError } from '../errors.js';
import { locateLive, withHeldSnapshot, type HeldView } from '../pool-source/live.js';
import { MAX_THIN_DEVICE_ID } from '../thin/details.js';
import { openPool } from '../thin/index.js';
import { activateOriginSteps, activatePoolSteps, mountSteps, releasePlan, snapshotSteps } from './plans.js';
import { containerDevice } from '../model/resolve.js';
import { checkSnapshotName, findState, listStates, removeState, writeState, type SnapshotState } from './state.js';
import { distModule } from '../pool-source/held-read.js';

export interface LiveOptions extends NamingOptions {
  id?: number;
  name?: string;
  dir?: string;
  fs?: FsType;
  force?: boolean;
  activatePool?: boolean;
  dryRun?: boolean;
  stateDir: string;
}

export interface LiveResult {
  dryRun: boolean;
  plan: string;
  state: SnapshotState;
  /** Where the container's root filesystem is (mount only). */
  rootfs: string | null;
}

/** What dmsetup prints for a thin id the pool has already (EEXIST) and for one it lacks (ENODATA). */
const EEXIST = 'File exists';
const ENODATA = 'No data available';
const MAX_ID_TRIES = 32;

function isEmptyDir(dir: string): boolean {
  return fs.readdirSync(dir).length === 0;
}

export async function snapshotContainer(
  root: DockerRoot,
  ref: string,
  host: DmHost,
  opts: LiveOptions,
): Promise<LiveResult> {
  const { container: c, record: rec } = containerDevice(root, ref, 'snapshot');
  if (rec.deleted && !opts.force) {
    throw new DmiError(
      'CONFLICT',
      `${rec.file}: the device is marked deleted (deferred deletion pending); pass --force to snapshot it anyway`,
    );
  }
  if (rec.size % 512 !== 0) throw new DmiError('BAD_INPUT', `${rec.file}: size ${rec.size} is not a multiple of 512`);
  const naming = resolveNaming(root.root, opts);
  const originName = thinDeviceName(naming.prefix, rec.hash);
  const records = root.recordSet();

  if (!opts.dryRun) {
    host.requireRoot('snapshot');
    host.requireDeviceMapper();
  }

  // The pool: active, or (--activate-pool) Docker's own loop-lvm pool set up again.
  const steps = [];
  let activatedPool: SnapshotState['activatedPool'] = null;
  // A dry run on a host without device-mapper cannot ask the kernel: it shows the plan for an active pool.
  const canAsk = !opts.dryRun || host.hasDeviceMapper();
  const status = canAsk ? await host.poolStatus(naming.poolName) : null;
  if (status === null && (canAsk || opts.activatePool)) {
    if (!opts.activatePool) {
      throw new DmiError(
        'NOT_FOUND',
        `pool ${naming.poolName} is not active (a stopped loop-lvm Docker removes it): start Docker, pass --pool, or --activate-pool to set it up from ${path.join(root.driverHome, 'devicemapper')}`,
      );
    }
    if (naming.externalPool)
      throw new DmiError(
        'UNSUPPORTED',
        `--activate-pool sets up Docker's loop-lvm pool only; ${naming.poolName} is an external pool (activate it with LVM)`,
      );
    const dataFile = path.join(root.driverHome, 'devicemapper', 'data');
    const metadataFile = path.join(root.driverHome, 'devicemapper', 'metadata');
    for (const f of [dataFile, metadataFile])
      if (!fs.existsSync(f)) throw new DmiError('NOT_FOUND', `${f}: no loop-lvm pool file to activate`);
    const loops = opts.dryRun ? ['/dev/loopA', '/dev/loopB'] : freeLoopDevices(2);
    if (loops.length < 2) throw new DmiError('CONFLICT', 'no two free loop devices for the pool');
    const dataSectors = Math.floor(fs.statSync(dataFile).size / 512);
    steps.push(
      ...activatePoolSteps({
        pool: naming.poolName,
        dataFile,
        metadataFile,
        dataLoop: loops[0]!,
        metadataLoop: loops[1]!,
        dataSectors,
        blockSectors: 128,
      }),
    );
    activatedPool = { name: naming.poolName, loops };
  } else if (status) {
    if (status.fail)
      throw new DmiError('CONFLICT', `pool ${naming.poolName} has failed (status Fail): refusing to touch it`);
    if (status.needsCheck)
      throw new DmiError(
        'CONFLICT',
        `pool ${naming.poolName} needs_check is set: run thin_check on a copy first; refusing to write to it`,
      );
    if (status.mode === 'ro')
      throw new DmiError(
        'CONFLICT',
        `pool ${naming.poolName} is read-only (metadata error or out of metadata space): a snapshot cannot be created`,
      );
    if (status.mode === 'out_of_data_space')
      throw new DmiError('CONFLICT', `pool ${naming.poolName} is out of data space: refusing to add a snapshot`);
  }

  const originActive =
    activatedPool === null && (canAsk ? await host.exists(originName) : fs.existsSync(`/dev/mapper/${originName}`));
  let fsType: FsType | undefined = opts.fs;
  if (!fsType && records.deviceSet?.baseDeviceFilesystem) fsType = records.deviceSet.baseDeviceFilesystem as FsType;
  if (!fsType && originActive) fsType = requireFs(probeFs(`/dev/mapper/${originName}`), `/dev/mapper/${originName}`);
  if (opts.dir && !fsType)
    throw new DmiError(
      'USAGE',
      'cannot tell the filesystem type (no BaseDeviceFilesystem in deviceset-metadata): pass --fs xfs|ext4',
    );

  // The ids the pool has, as its held metadata snapshot shows them (pool-source/live.ts: reserve, read, release):
  // ids Docker's records do not know (a device someone else made, a record lost) are skipped up front. Not on a
  // dry run (holding is a change) nor on a pool dminspect sets up read-only (no id is taken there).
  const poolIds =
    status !== null && activatedPool === null && !opts.dryRun
      ? await heldPoolIds(host, naming.poolName, opts.stateDir)
      : null;
  const usedIds = new Set(records.devices.map((d) => d.deviceId));
  if (opts.id !== undefined && usedIds.has(opts.id))
    throw new DmiError('CONFLICT', `--id ${opts.id} is used by a Docker device record`);
  if (opts.id !== undefined && poolIds?.has(opts.id))
    throw new DmiError('CONFLICT', `--id ${opts.id} is a thin device in pool ${naming.poolName} already`);
  let snapId =
    opts.id ??
    pickSnapId({ recordIds: usedIds, poolIds: poolIds ?? [], nextDeviceId: records.deviceSet?.nextDeviceId });
  for (const id of poolIds ?? []) usedIds.add(id);

  let makeDir = false;
  const dir = opts.dir ? path.resolve(opts.dir) : null;
  if (dir) {
    if (fs.existsSync(dir)) {
      if (!fs.statSync(dir).isDirectory()) throw new DmiError('CONFLICT', `${dir}: not a directory`);
      if (!isEmptyDir(dir)) throw new DmiError('CONFLICT', `${dir}: mount point is not empty`);
    } else makeDir = true;
  }

  for (let attempt = 0; ; attempt++) {
    while (usedIds.has(snapId)) snapId++;
    if (snapId > MAX_THIN_DEVICE_ID)
      throw new DmiError('CONFLICT', 'no free 24-bit thin device id above next_device_id');
    // A pool dminspect set up is read-only: the origin itself is activated read-only, no thin id is taken.
    const readOnlyPool = activatedPool !== null;
    const snapName = checkSnapshotName(
      opts.name ?? `dminspect-${c.id.slice(0, 12)}-${readOnlyPool ? `dev${rec.deviceId}` : snapId}`,
    );
    if (!opts.dryRun && (await host.exists(snapName)))
      throw new DmiError('CONFLICT', `a device-mapper device named ${snapName} exists already (snapshot name taken)`);
    const plan: Plan = {
      steps: [
        ...steps,
        ...(readOnlyPool
          ? activateOriginSteps({
              pool: naming.poolName,
              deviceId: rec.deviceId,
              name: snapName,
              sectors: rec.size / 512,
            })
          : snapshotSteps({
              pool: naming.poolName,
              origin: { name: originName, deviceId: rec.deviceId, active: originActive },
              snapId,
              snapName,
              sectors: rec.size / 512,
            })),
        ...(dir ? mountSteps({ device: `/dev/mapper/${snapName}`, dir, fsType: fsType!, makeDir }) : []),
      ],
    };
    const state: SnapshotState = {
      version: 1,
      createdAt: new Date().toISOString(),
      name: snapName,
      mode: 'live',
      root: root.root,
      container: { id: c.id, name: c.name },
      origin: { hash: rec.hash, deviceId: rec.deviceId, name: originName, size: rec.size },
      pool: naming.poolName,
      snapId: readOnlyPool ? null : snapId,
      mountPoint: dir,
      madeMountPoint: makeDir,
      fsType: fsType ?? null,
      activatedPool,
      image: null,
    };
    const text = renderPlan(plan);
    if (opts.dryRun) return { dryRun: true, plan: text, state, rootfs: dir ? path.join(dir, 'rootfs') : null };
    try {
      await executePlan(plan, host.run);
    } catch (e) {
      const failed = stepFailure(e);
      const said = failed ? `${failed.stderr}\n${failed.stdout}` : '';
      if (failed && said.includes(EEXIST) && opts.id === undefined && attempt < MAX_ID_TRIES) {
        usedIds.add(snapId); // in the pool but in no Docker record (as Docker does: take the next id)
        continue;
      }
      if (failed && said.includes(ENODATA) && (failed.step.some((a) => a.includes('create_snap')) || readOnlyPool)) {
        throw new DmiError(
          'NOT_FOUND',
          `thin device ${rec.deviceId} of container ${c.name || c.id.slice(0, 12)} is not in pool ${naming.poolName} (the record outlived the device)`,
        );
      }
      throw e;
    }
    writeState(opts.stateDir, state);
    return { dryRun: false, plan: text, state, rootfs: dir ? path.join(dir, 'rootfs') : null };
  }
}

/** The thin device ids in a pool's metadata (the held snapshot's trees when `metadataSnap`). */
export function poolThinIds(metadata: string, metadataSnap: boolean): Set<number> {
  const pool = openPool(metadata, { metadataSnap });
  try {
    return new Set(pool.devices().keys());
  } finally {
    pool.close();
  }
}

/** The thin ids in the active pool, read through a held metadata snapshot (released before this returns). */
async function heldPoolIds(host: DmHost, pool: string, stateDir: string): Promise<Set<number>> {
  const loc = await locateLive(host, pool);
  if (loc === null) throw new DmiError('NOT_FOUND', `pool ${pool} is no longer active`);
  const r = await withHeldSnapshot(
    host,
    loc,
    { stateDir },
    { task: { module: distModule('forensics/live.js'), fn: 'heldThinIds', args: [] }, local: heldThinIds },
  );
  return new Set(r.value);
}

/** The ids in the held snapshot (run in the read's worker thread: pool-source/held-read.ts). */
export function heldThinIds(v: HeldView): number[] {
  return [...poolThinIds(v.metadata, v.heldRoot !== null)];
}

/**
 * The snapshot's thin id when none is given: the first id above Docker's next_device_id and every id in its
 * records (as Docker itself counts on), that the pool does not have. CONFLICT past the 24-bit id space.
 */
export function pickSnapId(i: {
  recordIds: Iterable<number>;
  poolIds: Iterable<number>;
  nextDeviceId?: number | null | undefined;
}): number {
  const records = [...i.recordIds];
  const taken = new Set([...records, ...i.poolIds]);
  let id = Math.max(i.nextDeviceId ?? 0, ...records) + 1;
  while (taken.has(id)) id++;
  if (id > MAX_THIN_DEVICE_ID) throw new DmiError('CONFLICT', 'no free 24-bit thin device id above next_device_id');
  return id;
}

export interface ReleaseResult {
  released: boolean;
  plan: string;
  state: SnapshotState | null;
}

export async function releaseSnapshot(
  ref: string,
  host: DmHost,
  opts: { stateDir: string; dryRun?: boolean; keepImage?: boolean; root?: string },
): Promise<ReleaseResult> {
  const st = findState(opts.stateDir, ref);
  if (!st) return { released: false, plan: '', state: null };
  if (opts.root !== undefined && st.root !== opts.root) {
    throw new DmiError(
      'CONFLICT',
      `${st.name} was made for the Docker root ${st.root}, not ${opts.root}: not released`,
    );
  }
  const plan = releasePlan({
    mountPoint: st.mountPoint,
    madeMountPoint: st.madeMountPoint,
    snapName: st.mode === 'live' ? st.name : null,
    pool: st.pool,
    snapId: st.snapId,
    activatedPool: st.activatedPool,
    imageLoop: st.image?.loop ?? null,
  });
  const text = renderPlan(plan);
  if (opts.dryRun) return { released: false, plan: text, state: st };
  host.requireRoot('release');
  await executePlan(plan, host.run);
  if (st.image && !st.image.keep && !opts.keepImage) fs.rmSync(st.image.path, { force: true });
  removeState(opts.stateDir, st.name);
  return { released: true, plan: text, state: st };
}

export function snapshots(stateDir: string): SnapshotState[] {
  return listStates(stateDir);
}
