// Builds engine.json (what the Docker engine and the kernel said) from the raw records that
// docker-capture.sh saved. Runs in the guest with the host's node: node engine-json.mjs RAW_DIR FS
import fs from 'node:fs';
import path from 'node:path';

const [raw, fsType] = process.argv.slice(2);
if (!raw || !fsType) {
  console.error('usage: engine-json.mjs RAW_DIR xfs|ext4');
  process.exit(2);
}
const read = (f) => fs.readFileSync(path.join(raw, f), 'utf8');
const json = (f) => JSON.parse(read(f));
const lines = (f) =>
  read(f)
    .split('\n')
    .filter((l) => l.length > 0);
const keyValues = (f) =>
  Object.fromEntries(lines(f).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

const info = json('docker-info.json');
const driverStatus = Object.fromEntries(info.DriverStatus ?? []);
const poolName = driverStatus['Pool Name'];
const [major, minor, inode, stDev] = read('devicemapper-stat.txt').trim().split(/\s+/).map(Number);
const prefix = poolName.replace(/-pool$/, '');

// "<DeviceName> <DeviceId> <bytes> <sha256>", one line per device read through the kernel
const devices = new Map(
  lines('device-sha256.txt').map((l) => {
    const [name, id, bytes, sha256] = l.split(' ');
    return [name, { id: Number(id), bytes: Number(bytes), sha256 }];
  }),
);
const deviceOf = (gd, required) => {
  const d = devices.get(gd.DeviceName);
  if (!d && required) throw new Error(`no hash for ${gd.DeviceName}`);
  return d ?? null;
};
const hashOf = (deviceName) => (deviceName.startsWith(`${prefix}-`) ? deviceName.slice(prefix.length + 1) : null);

const images = json('images.json').map((i) => ({
  id: i.Id,
  tags: i.RepoTags,
  parent: i.Parent || null,
  comment: i.Comment,
  layers: i.RootFS.Layers,
  graphDriver: i.GraphDriver,
  deviceHash: hashOf(i.GraphDriver.Data.DeviceName),
  device: deviceOf(i.GraphDriver.Data, false), // null when the capture skipped image devices
}));

const containers = lines('files.tsv').map((l) => {
  const [name, file] = l.split('\t');
  const c = json(`inspect-${name}.json`)[0];
  const gd = c.GraphDriver.Data;
  return {
    id: c.Id,
    name,
    state: c.State.Status,
    running: c.State.Running,
    stateAfterStop: json(`state-after-stop-${name}.json`), // config.v2.json .State once dockerd had stopped
    exitCode: c.State.ExitCode,
    image: c.Config.Image,
    imageId: c.Image,
    cmd: c.Config.Cmd,
    graphDriver: c.GraphDriver, // DeviceId, DeviceName, DeviceSize as docker prints them (strings)
    deviceHash: hashOf(gd.DeviceName), // = mount-id in image/devicemapper/layerdb/mounts/<id>/mount-id
    file: { path: file, pathInDevice: `rootfs${file}`, content: read(`file-${name}.txt`) },
    diff: lines(`diff-${name}.txt`),
    device: deviceOf(gd, true), // sha256 of the whole thin device, read through the kernel after dockerd stopped
  };
});

const poolTable = read('pool-table.txt').trim();
const t = poolTable.split(/\s+/);
const engine = {
  schema: 1,
  about:
    'Recorded from a real dockerd (devicemapper, loop-lvm) in a QEMU guest by test/kernel/guest/docker-capture.sh. ' +
    'docker-root.tar.gz (GNU tar --sparse, members under docker/) is the Docker root after a clean stop. ' +
    'device.sha256 is the sha256 of the whole thin device, read through the kernel from that final state.',
  fs: fsType,
  versions: keyValues('versions.txt'),
  dockerdArgs: lines('dockerd-args.txt'),
  dockerdExit: Number(read('dockerd-exit.txt').trim()),
  tarball: {
    file: 'docker-root.tar.gz',
    root: 'docker',
    ...Object.fromEntries(
      lines('du.txt')
        .map((l) => l.split(' '))
        .map(([k, v]) => [`${k}Bytes`, Number(v)]),
    ),
  },
  pool: {
    name: poolName,
    devicePrefix: prefix,
    deviceNameFormat: `${prefix}-<hash>`,
    fromStat: {
      path: '/var/lib/docker/devicemapper',
      major,
      minor,
      inode,
      stDev,
      name: `docker-${major}:${minor}-${inode}-pool`,
    },
    table: poolTable,
    lengthSectors: Number(t[1]),
    dataBlockSectors: Number(t[5]),
    lowWaterMark: Number(t[6]),
    features: t.slice(8),
    dataFile: driverStatus['Data loop file'],
    metadataFile: driverStatus['Metadata loop file'],
    baseDeviceSize: driverStatus['Base Device Size'],
    backingFilesystem: driverStatus['Backing Filesystem'],
  },
  images,
  containers,
  dockerInfo: info,
  dockerVersion: json('docker-version.json'),
  whileRunning: {
    dmsetupLs: lines('dmsetup-ls.txt'),
    dmsetupTable: lines('dmsetup-table.txt'),
    dmsetupStatus: lines('dmsetup-status.txt'),
    dmsetupInfo: lines('dmsetup-info.txt'),
    losetup: lines('losetup.txt'),
    dockerPs: lines('docker-ps.jsonl').map((l) => JSON.parse(l)),
    thinLs: lines('thin_ls.txt'),
    thinDump: read('thin_dump.xml'),
  },
  afterStop: lines('after-stop.txt'),
  hashPoolTable: read('hash-pool-table.txt').trim(),
};
process.stdout.write(`${JSON.stringify(engine, null, 2)}\n`);
