/**
 * The engine.json written by test/kernel/guest/engine-json.mjs (fixtures/captures/<fs>/engine.json), and
 * checks shared by the capture test and the committed-fixture test.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execa } from 'execa';
import { expect } from 'vitest';

export interface GraphDriverData {
  DeviceId: string;
  DeviceName: string;
  DeviceSize: string;
}

export interface DeviceHash {
  id: number;
  bytes: number;
  sha256: string;
}

export interface EngineContainer {
  id: string;
  name: string;
  state: string;
  running: boolean;
  exitCode: number;
  stateAfterStop: { Running: boolean; ExitCode: number; [k: string]: unknown };
  image: string;
  imageId: string;
  graphDriver: { Name: string; Data: GraphDriverData };
  deviceHash: string;
  file: { path: string; pathInDevice: string; content: string };
  diff: string[];
  device: DeviceHash;
}

export interface EngineImage {
  id: string;
  tags: string[];
  parent: string | null;
  layers: string[];
  graphDriver: { Name: string; Data: GraphDriverData };
  deviceHash: string;
  device: DeviceHash | null;
}

export interface Engine {
  schema: number;
  fs: 'xfs' | 'ext4';
  versions: Record<string, string>;
  dockerdArgs: string[];
  dockerdExit: number;
  tarball: { file: string; root: string; apparentBytes: number; allocatedBytes: number };
  pool: {
    name: string;
    devicePrefix: string;
    deviceNameFormat: string;
    fromStat: { path: string; major: number; minor: number; inode: number; stDev: number; name: string };
    table: string;
    lengthSectors: number;
    dataBlockSectors: number;
    lowWaterMark: number;
    features: string[];
    dataFile: string;
    metadataFile: string;
    baseDeviceSize: string;
    backingFilesystem: string;
  };
  images: EngineImage[];
  containers: EngineContainer[];
  dockerInfo: { Driver: string; ServerVersion: string; DriverStatus: [string, string][]; [k: string]: unknown };
  whileRunning: {
    dmsetupLs: string[];
    dmsetupTable: string[];
    dmsetupStatus: string[];
    thinLs: string[];
    thinDump: string;
    [k: string]: unknown;
  };
  afterStop: string[];
}

export function readEngine(file: string): Engine {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Engine;
}

/** The scenario docker-capture.sh plays: container name -> [state while dockerd ran, image, file]. */
export const SCENARIO: Record<string, { state: string; image: string; file: string; says: string }> = {
  'dm-writer': {
    state: 'exited',
    image: 'dminspect/busybox:1.35',
    file: '/data/marker.txt',
    says: 'written by dm-writer',
  },
  'dm-created': {
    state: 'created',
    image: 'dminspect/busybox:1.35',
    file: '/root/cp-marker.txt',
    says: 'copied into dm-created with docker cp',
  },
  'dm-running': {
    state: 'running',
    image: 'dminspect/busybox:layer2',
    file: '/root/running.txt',
    says: 'written by dm-running',
  },
};

/** What the engine said must hang together: names, ids, pool, device records, thin metadata. */
export function checkEngine(e: Engine, fsType: 'xfs' | 'ext4'): void {
  expect(e.schema).toBe(1);
  expect(e.fs).toBe(fsType);
  expect(e.versions.dockerd).toMatch(/^Docker version 20\.10\./);
  expect(e.dockerInfo.Driver).toBe('devicemapper');
  expect(e.dockerInfo.ServerVersion).toMatch(/^20\.10\./);
  expect(e.dockerdExit).toBe(0);
  const status = Object.fromEntries(e.dockerInfo.DriverStatus);
  expect(status['Backing Filesystem']).toBe(fsType);
  expect(status['Udev Sync Supported']).toBe('false');

  // pool name = docker-<major>:<minor>-<inode of the driver home>-pool
  expect(e.pool.name).toMatch(/^docker-\d+:\d+-\d+-pool$/);
  expect(e.pool.name).toBe(e.pool.fromStat.name);
  expect(e.pool.devicePrefix).toBe(e.pool.name.replace(/-pool$/, ''));
  expect(e.pool.table).toMatch(/^0 \d+ thin-pool \d+:\d+ \d+:\d+ 128 32768 1 skip_block_zeroing$/);
  expect(e.pool.dataBlockSectors).toBe(128);
  expect(e.pool.dataFile).toBe('/var/lib/docker/devicemapper/devicemapper/data');
  expect(e.pool.metadataFile).toBe('/var/lib/docker/devicemapper/devicemapper/metadata');

  const baseBytes = fsType === 'xfs' ? 512 * 2 ** 20 : 128 * 2 ** 20;
  expect(e.containers.map((c) => c.name)).toEqual(Object.keys(SCENARIO));
  const ids = new Set<number>();
  for (const c of e.containers) {
    const want = SCENARIO[c.name];
    if (!want) throw new Error(`unexpected container ${c.name}`);
    expect(c.id).toMatch(/^[0-9a-f]{64}$/);
    expect(c.state).toBe(want.state);
    expect(c.running).toBe(want.state === 'running');
    expect(c.stateAfterStop.Running).toBe(false); // a clean stop stops the running container too
    expect(c.image).toBe(want.image);
    expect(c.file.path).toBe(want.file);
    expect(c.file.content).toBe(`dminspect marker: ${want.says} (${fsType})\n`);
    expect(c.diff).toContain(`A ${want.file}`);
    expect(c.graphDriver.Name).toBe('devicemapper');
    const d = c.graphDriver.Data;
    expect(d.DeviceName).toBe(`${e.pool.devicePrefix}-${c.deviceHash}`);
    expect(c.deviceHash).toMatch(/^[0-9a-f]{64}$/);
    expect(d.DeviceId).toMatch(/^\d+$/);
    expect(Number(d.DeviceId)).toBeGreaterThan(1); // 1 is the base device
    expect(Number(d.DeviceSize)).toBe(baseBytes);
    expect(c.device.id).toBe(Number(d.DeviceId));
    expect(c.device.bytes).toBe(baseBytes);
    expect(c.device.sha256).toMatch(/^[0-9a-f]{64}$/);
    ids.add(c.device.id);
  }
  expect(ids.size).toBe(3);
  expect(new Set(e.containers.map((c) => c.device.sha256)).size).toBe(3);

  const [base, layer2] = e.images;
  expect(base?.tags).toEqual(['dminspect/busybox:1.35']);
  expect(layer2?.tags).toEqual(['dminspect/busybox:layer2']);
  expect(layer2?.parent).toBe(base?.id);
  expect(layer2?.layers.slice(0, 1)).toEqual(base?.layers);
  expect(layer2?.layers).toHaveLength(2);
  for (const c of e.containers) expect(c.imageId).toBe(c.image === 'dminspect/busybox:1.35' ? base?.id : layer2?.id);

  // while dockerd ran: the pool and only the running container's device were active
  const active = e.whileRunning.dmsetupLs.map((l) => l.split(/\s+/)[0]);
  expect(active).toContain(e.pool.name);
  for (const c of e.containers) {
    if (c.state === 'running') expect(active).toContain(c.graphDriver.Data.DeviceName);
    else expect(active).not.toContain(c.graphDriver.Data.DeviceName);
  }
  expect(e.whileRunning.dmsetupTable.join('\n')).toContain(`${e.pool.name}: ${e.pool.table}`);
  // thin_ls / thin_dump from a reserved metadata snapshot list every device
  const thinDevs = e.whileRunning.thinLs.slice(1).map((l) => Number(l.trim().split(/\s+/)[0]));
  for (const c of e.containers) {
    expect(thinDevs).toContain(c.device.id);
    expect(e.whileRunning.thinDump).toContain(`<device dev_id="${c.device.id}"`);
  }
  expect(e.whileRunning.thinDump).toMatch(/<superblock [^>]*data_block_size="128"/);
  // loop-lvm: a clean stop removes every device and the pool
  expect(e.afterStop).toContain('No devices found');
}

/** The tarball holds what offline analysis needs, and its records agree with what the engine said. */
export async function checkTarball(tarball: string, e: Engine): Promise<void> {
  const size = fs.statSync(tarball).size;
  expect(size).toBeLessThan(10 * 2 ** 20);
  const { stdout } = await execa('tar', ['--list', '-vzf', tarball]);
  const lines = stdout.split('\n');
  const names = new Set(lines.map((l) => l.split(/\s+/).slice(5).join(' ')));
  expect(names).toContain('docker/devicemapper/devicemapper/data');
  expect(names).toContain('docker/devicemapper/devicemapper/metadata');
  expect(names).toContain('docker/devicemapper/metadata/deviceset-metadata');
  expect([...names].filter((n) => n.endsWith('-json.log'))).toEqual([]);
  const top = new Set([...names].map((n) => n.split('/')[1]).filter(Boolean));
  expect([...top].sort()).toEqual(['containers', 'devicemapper', 'image']);
  const member = async (name: string) => (await execa('tar', ['-xzOf', tarball, name])).stdout;
  for (const c of e.containers) {
    expect(names).toContain(`docker/containers/${c.id}/config.v2.json`);
    expect(names).toContain(`docker/containers/${c.id}/hostconfig.json`);
    const mountId = await member(`docker/image/devicemapper/layerdb/mounts/${c.id}/mount-id`);
    expect(mountId).toBe(c.deviceHash);
    const rec = JSON.parse(await member(`docker/devicemapper/metadata/${c.deviceHash}`)) as {
      device_id: number;
      size: number;
    };
    expect(rec.device_id).toBe(c.device.id);
    expect(rec.size).toBe(c.device.bytes);
  }
  const dataLine = lines.find((l) => l.endsWith(' docker/devicemapper/devicemapper/data'));
  expect(dataLine?.split(/\s+/)[2]).toBe(String(e.pool.lengthSectors * 512));
  expect(path.basename(tarball)).toBe(e.tarball.file);
}
