/** The container report: everything that ties a container to its thin device, in one object. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ContainerRecord } from '../docker/containers.js';
import { readLayerChain } from '../docker/layerdb.js';
import { resolveNaming, thinDeviceName, type NamingOptions } from '../docker/naming.js';
import type { DeviceRecord } from '../docker/records.js';
import { DockerRoot } from '../docker/root.js';
import { readMountInfo, type MountInfo } from '../dm/mountinfo.js';
import { connectDaemon, type Daemon, type DaemonContainer } from '../docker/daemon.js';
import { checkRef } from '../docker/ids.js';
import { isDmiError } from '../errors.js';
import { humanBytes, SECTOR_SIZE } from '../util/units.js';
import { containerMount, imageLayerHashes, imageNamesOf } from './join.js';
import type { DeviceUsageView } from './usage.js';
import { resolveContainer } from './resolve.js';

export interface DeviceView {
  hash: string;
  deviceId: number;
  size: number;
  sectors: number;
  sizeHuman: string;
  /** `<prefix>-<hash>`. */
  name: string;
  devPath: string;
  transactionId: number;
  initialized: boolean;
  deleted: boolean | null;
  recordFile: string;
  /** `0 <sectors> thin /dev/mapper/<pool> <device_id>`: the table that activates it. */
  table: string;
  /** `/dev/mapper/<name>` exists on this host. */
  active: boolean;
}

export interface LayerView {
  chainId: string;
  cacheId: string;
  deviceId: number | null;
  size: number | null;
}

export interface ContainerReport {
  id: string;
  name: string;
  image: { id: string | null; names: string[]; configImage: string | null };
  state: ContainerRecord['state'];
  created: string | null;
  layout: ContainerRecord['layout'];
  driver: string | null;
  mountId: string | null;
  device: DeviceView | null;
  init: { hash: string; deviceId: number | null } | null;
  pool: { name: string; nameSource: string; devPath: string; devicePrefix: string };
  layers: LayerView[];
  mount: { path: string; mounted: boolean; mountedAt: string[] };
  /** The device's usage in the pool (mapped / exclusive / shared), when the pool metadata can be read. */
  usage: DeviceUsageView | null;
  /** What the live daemon said, when one answered for this root (null: not asked or no answer). */
  daemon: DaemonCheck | null;
  problems: string[];
}

export interface DaemonCheck {
  host: string;
  version: string | null;
  rootDir: string | null;
  graphDriver: DaemonContainer['graphDriver'] | null;
  /** Disagreements between the daemon and the on-disk records: each one line. */
  findings: string[];
}

export interface ReportOptions extends NamingOptions {
  mountInfo?: MountInfo[];
}

export function deviceView(rec: DeviceRecord, prefix: string, poolName: string): DeviceView {
  const name = thinDeviceName(prefix, rec.hash);
  const devPath = `/dev/mapper/${name}`;
  const sectors = Math.floor(rec.size / SECTOR_SIZE);
  return {
    hash: rec.hash,
    deviceId: rec.deviceId,
    size: rec.size,
    sectors,
    sizeHuman: humanBytes(rec.size),
    name,
    devPath,
    transactionId: rec.transactionId,
    initialized: rec.initialized,
    deleted: rec.deleted,
    recordFile: rec.file,
    table: `0 ${sectors} thin /dev/mapper/${poolName} ${rec.deviceId}`,
    active: fs.existsSync(devPath),
  };
}

export function containerReport(root: DockerRoot, ref: string, opts: ReportOptions = {}): ContainerReport {
  const c = resolveContainer(root, ref);
  const naming = resolveNaming(root.root, opts);
  const problems: string[] = [];
  const note = (e: unknown) => {
    if (!isDmiError(e)) throw e;
    problems.push(e.message);
  };

  // What the report is about must read cleanly: a corrupt mount-id or device record is an error, a missing
  // one is a finding shown in the report.
  const mount = containerMount(root, c);
  if (mount === null) problems.push(`no layerdb mount-id for container ${c.id.slice(0, 12)}`);
  let device: DeviceView | null = null;
  let init: ContainerReport['init'] = null;
  if (mount) {
    const rec = root.deviceRecord(mount.mountId);
    if (rec) device = deviceView(rec, naming.prefix, naming.poolName);
    else problems.push(`no device record ${path.join(root.driverHome, 'metadata', mount.mountId)}`);
    if (mount.initId) init = { hash: mount.initId, deviceId: root.deviceRecord(mount.initId)?.deviceId ?? null };
  }

  const layers: LayerView[] = [];
  let images = new Map();
  try {
    images = root.imageSet().images;
    const img = c.imageId ? images.get(c.imageId) : undefined;
    const top = mount?.parentChainId ?? null;
    let hashes: { chainId: string; cacheId: string; size: number | null }[] = [];
    if (img?.legacy || c.layout === 'v1') {
      hashes = img ? imageLayerHashes(root, img).map((h) => ({ chainId: h, cacheId: h, size: null })) : [];
    } else if (top) {
      const chain = readLayerChain(root.root, top, (id) => root.layer(id));
      hashes = chain.map((l) => ({ chainId: l.chainId, cacheId: l.cacheId, size: l.size }));
    }
    for (const h of hashes) {
      let deviceId: number | null = null;
      try {
        deviceId = root.deviceRecord(h.cacheId)?.deviceId ?? null;
      } catch (e) {
        note(e);
      }
      layers.push({ chainId: h.chainId, cacheId: h.cacheId, deviceId, size: h.size });
    }
  } catch (e) {
    note(e);
  }

  const mntPath = path.join(root.driverHome, 'mnt', mount?.mountId ?? c.id);
  const mounts = opts.mountInfo ?? readMountInfo();
  const mountedAt = mounts
    .filter(
      (m) =>
        m.mountPoint === mntPath ||
        (device !== null && (m.source === device.devPath || m.source === `/dev/mapper/${device.name}`)),
    )
    .map((m) => m.mountPoint);

  return {
    id: c.id,
    name: c.name,
    image: { id: c.imageId, names: imageNamesOf(images, c.imageId), configImage: c.configImage },
    state: c.state,
    created: c.created,
    layout: c.layout,
    driver: c.driver,
    mountId: mount?.mountId ?? null,
    device,
    init,
    pool: {
      name: naming.poolName,
      nameSource: naming.poolNameSource,
      devPath: `/dev/mapper/${naming.poolName}`,
      devicePrefix: naming.prefix,
    },
    layers,
    mount: { path: mntPath, mounted: mountedAt.length > 0, mountedAt: [...new Set(mountedAt)] },
    daemon: null,
    usage: null,
    problems,
  };
}

/** Compares `docker inspect`'s GraphDriver.Data with what the records say. */
export function crossCheck(report: ContainerReport, daemon: Daemon, dc: DaemonContainer | null): DaemonCheck {
  const findings: string[] = [];
  const d = report.device;
  if (!dc)
    findings.push(`the daemon at ${daemon.info.host} does not know container ${report.id.slice(0, 12)} (on disk only)`);
  else {
    const g = dc.graphDriver;
    if (g.name && g.name !== 'devicemapper') findings.push(`the daemon says the container uses the ${g.name} driver`);
    if (d) {
      if (g.deviceId !== null && g.deviceId !== d.deviceId)
        findings.push(`DeviceId: daemon ${g.deviceId}, record ${d.deviceId} (${d.recordFile})`);
      if (g.deviceSize !== null && g.deviceSize !== d.size)
        findings.push(`DeviceSize: daemon ${g.deviceSize}, record ${d.size}`);
      if (g.deviceName !== null && g.deviceName !== d.name)
        findings.push(`DeviceName: daemon ${g.deviceName}, derived ${d.name} (pass --pool or check the driver home)`);
    } else if (g.deviceId !== null)
      findings.push(`the daemon names device ${g.deviceId} but there is no record on disk`);
  }
  return {
    host: daemon.info.host,
    version: daemon.info.serverVersion,
    rootDir: daemon.info.dockerRootDir,
    graphDriver: dc?.graphDriver ?? null,
    findings,
  };
}

/**
 * The report, checked against the live daemon when one answers for this root: the daemon resolves the ref
 * (as `docker inspect` would) and names the pool; the records stay the source of every number.
 */
export async function containerReportLive(
  root: DockerRoot,
  ref: string,
  opts: ReportOptions & { host?: string; useDaemon: boolean },
): Promise<ContainerReport> {
  const daemon = opts.useDaemon ? await connectDaemon(opts.host) : null;
  if (!daemon || (daemon.info.dockerRootDir !== null && path.resolve(daemon.info.dockerRootDir) !== root.root)) {
    const r = containerReport(root, ref, opts);
    if (daemon)
      r.problems.push(
        `the daemon at ${daemon.info.host} serves ${daemon.info.dockerRootDir}, not ${root.root}: not cross-checked`,
      );
    return r;
  }
  checkRef(ref, 'container reference');
  const dc = await daemon.container(ref.replace(/^\//, ''));
  const poolName = opts.pool ?? daemon.info.driverStatus['Pool Name'];
  const r = containerReport(root, dc?.id ?? ref, { ...opts, pool: poolName });
  if (!opts.pool && poolName) r.pool.nameSource = 'daemon';
  r.daemon = crossCheck(r, daemon, dc);
  return r;
}
