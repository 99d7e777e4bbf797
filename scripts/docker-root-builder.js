// Builds Docker roots that use the devicemapper driver, file for file as Docker 1.x–20.10 writes them
// (moby daemon/graphdriver/devmapper/deviceset.go, layer/filestore.go, container/container.go,
// reference/store.go). Used by scripts/make-fixtures.js for the committed samples, by the tests for
// variants and bad input, and by the benchmark for big roots. Deterministic: ids are sha256 of seeds.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

export const sha = (s) => createHash('sha256').update(s).digest('hex');

/** chain(1) = diff(1); chain(n) = sha256("sha256:<chain(n-1)> sha256:<diff(n)>") (moby layer/layer.go). */
export function chainIds(diffs) {
  const out = [];
  let prev = null;
  for (const d of diffs) {
    prev = prev === null ? d : sha(`sha256:${prev} sha256:${d}`);
    out.push(prev);
  }
  return out;
}

function write(file, content) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}
const json = (v) => JSON.stringify(v);

const EPOCH = Date.parse('2024-03-01T09:00:00Z');
const time = (i) => new Date(EPOCH + i * 61_000).toISOString().replace('.000Z', '.123456789Z');

/**
 * A ≥ 1.10 root. spec: {
 *   images: [{ name, layers: [seed...] }],        layers with the same seed are shared
 *   containers: [{ name, image, state: 'running'|'exited'|'created'|'paused'|'dead', exitCode?, size? }],
 *   extraRecords: [{ seed, deleted?, initialized? }], records that no layer or container names
 *   tmpFiles: [name], baseSize, fs: 'xfs'|'ext4', legacyDeletedKey: false (omit "deleted")
 * }
 * Returns what it wrote (ids, hashes, device ids) so tests can compare.
 */
export function buildV2Root(root, spec) {
  const dm = path.join(root, 'devicemapper');
  const meta = path.join(dm, 'metadata');
  const layerdb = path.join(root, 'image', 'devicemapper', 'layerdb');
  const imagedb = path.join(root, 'image', 'devicemapper', 'imagedb');
  fs.mkdirSync(meta, { recursive: true });
  fs.mkdirSync(path.join(dm, 'devicemapper'), { recursive: true });
  fs.mkdirSync(path.join(root, 'containers'), { recursive: true });
  const baseSize = spec.baseSize ?? 10 * 1024 ** 3;
  let nextId = 0;
  let txn = 0;
  const result = /** @type {any} */ ({ devices: new Map(), images: [], containers: [], layers: new Map() });
  const record = (hash, fields = {}) => {
    const id = ++nextId;
    txn++;
    const rec = {
      device_id: id,
      size: fields.size ?? baseSize,
      transaction_id: txn,
      initialized: fields.initialized ?? false,
      ...(spec.legacyDeletedKey === false ? {} : { deleted: fields.deleted ?? false }),
    };
    write(path.join(meta, hash === '' ? 'base' : hash), json(rec));
    result.devices.set(hash, rec);
    return rec;
  };
  record('', { initialized: true, size: baseSize });

  // Image layers: one device per distinct chain id, snapshot of its parent.
  const repos = {};
  for (const img of spec.images ?? []) {
    const diffs = img.layers.map((s) => sha(`diff:${s}`));
    const chains = chainIds(diffs);
    chains.forEach((chain, i) => {
      if (result.layers.has(chain)) return;
      const cacheId = sha(`cache:${chain}`);
      const dir = path.join(layerdb, 'sha256', chain);
      write(path.join(dir, 'cache-id'), cacheId);
      write(path.join(dir, 'diff'), `sha256:${diffs[i]}`);
      write(path.join(dir, 'size'), String(1000 + i * 4096));
      if (i > 0) write(path.join(dir, 'parent'), `sha256:${chains[i - 1]}`);
      write(path.join(dir, 'tar-split.json.gz'), '');
      record(cacheId);
      result.layers.set(chain, { chain, cacheId, diff: diffs[i] });
    });
    const config = {
      architecture: 'amd64',
      config: { Cmd: ['sh'], Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
      created: time(0),
      history: img.layers.map(() => ({ created: time(0), created_by: 'imported' })),
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: diffs.map((d) => `sha256:${d}`) },
    };
    const text = json(config);
    const imageId = sha(text);
    write(path.join(imagedb, 'content', 'sha256', imageId), text);
    write(path.join(imagedb, 'metadata', 'sha256', imageId, 'lastUpdated'), time(0));
    const [repo] = img.name.split(':');
    (repos[repo] ??= {})[img.name] = `sha256:${imageId}`;
    result.images.push({ name: img.name, id: imageId, topChain: chains.at(-1), chains });
  }
  write(path.join(root, 'image', 'devicemapper', 'repositories.json'), json({ Repositories: repos }));

  (spec.containers ?? []).forEach((c, i) => {
    const img = result.images.find((x) => x.name === c.image);
    if (!img) throw new Error(`no image ${c.image}`);
    const id = c.id ?? sha(`container:${c.name}`);
    const mountId = c.mountId ?? sha(`mount:${c.name}`);
    const initId = `${mountId}-init`;
    record(initId, { size: c.size });
    record(mountId, { size: c.size });
    const mdir = path.join(layerdb, 'mounts', id);
    write(path.join(mdir, 'mount-id'), mountId);
    write(path.join(mdir, 'init-id'), initId);
    write(path.join(mdir, 'parent'), `sha256:${img.topChain}`);
    const started = c.state !== 'created';
    const running = c.state === 'running' || c.state === 'paused';
    const cfg = {
      StreamConfig: {},
      State: {
        Running: running,
        Paused: c.state === 'paused',
        Restarting: false,
        OOMKilled: false,
        RemovalInProgress: false,
        Dead: c.state === 'dead',
        Pid: running ? 4000 + i : 0,
        ExitCode: c.exitCode ?? 0,
        Error: '',
        StartedAt: started ? time(i + 10) : '0001-01-01T00:00:00Z',
        FinishedAt: started && !running ? time(i + 11) : '0001-01-01T00:00:00Z',
        Health: null,
      },
      ID: id,
      Created: time(i + 5),
      Managed: false,
      Path: 'sh',
      Args: ['-c', 'echo hello'],
      Config: {
        Hostname: id.slice(0, 12),
        Env: ['PATH=/bin'],
        Cmd: ['sh', '-c', 'echo hello'],
        Image: c.image,
        Labels: {},
      },
      Image: `sha256:${img.id}`,
      NetworkSettings: {},
      LogPath: path.join('/var/lib/docker/containers', id, `${id}-json.log`),
      Name: `/${c.name}`,
      Driver: 'devicemapper',
      OS: 'linux',
      MountLabel: '',
      ProcessLabel: '',
      RestartCount: 0,
      HasBeenStartedBefore: started,
      HasBeenManuallyStopped: false,
      MountPoints: {},
      AppArmorProfile: '',
      HostnamePath: '',
      HostsPath: '',
      ShmPath: '',
      ResolvConfPath: '',
      SeccompProfile: '',
      NoNewPrivileges: false,
    };
    write(path.join(root, 'containers', id, 'config.v2.json'), json(cfg));
    write(path.join(root, 'containers', id, 'hostconfig.json'), json({ NetworkMode: 'default' }));
    result.containers.push({ id, name: c.name, mountId, initId, image: img, state: c.state });
  });

  for (const x of spec.extraRecords ?? [])
    record(sha(`extra:${x.seed}`), { deleted: x.deleted, initialized: x.initialized });
  for (const t of spec.tmpFiles ?? []) write(path.join(meta, t), '{"device_id":');
  write(
    path.join(meta, 'deviceset-metadata'),
    json({
      next_device_id: nextId,
      BaseDeviceUUID: sha('uuid').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/, '$1-$2-$3-$4-$5'),
      BaseDeviceFilesystem: spec.fs ?? 'xfs',
    }),
  );
  const last = [...result.devices.entries()].at(-1);
  write(
    path.join(meta, 'transaction-metadata'),
    json({ open_transaction_id: txn, device_hash: last[0], device_id: last[1].device_id }),
  );
  result.nextDeviceId = nextId;
  result.transactionId = txn;
  return result;
}

/**
 * A pre-1.10 root (Docker 1.7-era): graph/<image>/json, repositories-devicemapper, containers/<id>/config.json,
 * device hash = container id, init = <id>-init, records without the "deleted" key (added in 1.9).
 * spec: { images: [{ name, layers: [seed...] }], containers: [{ name, image, state }], legacyJson?: true }
 * With legacyJson, records live in the pre-1.4 single devicemapper/json file instead of metadata/.
 */
export function buildV1Root(root, spec) {
  const dm = path.join(root, 'devicemapper');
  fs.mkdirSync(path.join(dm, 'metadata'), { recursive: true });
  const devices = /** @type {Record<string, any>} */ ({});
  let nextId = 0;
  const record = (hash, initialized = false) => {
    const rec = { device_id: ++nextId, size: 10 * 1024 ** 3, transaction_id: nextId, initialized };
    devices[hash] = rec;
    return rec;
  };
  record('', true);
  const repos = {};
  const result = /** @type {any} */ ({ images: [], containers: [], devices });
  for (const img of spec.images ?? []) {
    let parent = null;
    const ids = [];
    for (const seed of img.layers) {
      const id = sha(`v1image:${parent}:${seed}`);
      if (!devices[id]) {
        write(
          path.join(root, 'graph', id, 'json'),
          json({ id, ...(parent ? { parent } : {}), created: time(0), container_config: { Cmd: ['sh'] }, os: 'linux' }),
        );
        write(path.join(root, 'graph', id, 'layersize'), '1024');
        record(id);
      }
      ids.push(id);
      parent = id;
    }
    const [repo, tag] = img.name.split(':');
    (repos[repo] ??= {})[tag] = parent;
    result.images.push({ name: img.name, id: parent, layers: ids.reverse() });
  }
  write(path.join(root, 'repositories-devicemapper'), json({ Repositories: repos }));
  (spec.containers ?? []).forEach((c, i) => {
    const img = result.images.find((x) => x.name === c.image);
    const id = sha(`v1container:${c.name}`);
    record(`${id}-init`);
    record(id);
    const started = c.state !== 'created';
    const running = c.state === 'running';
    write(
      path.join(root, 'containers', id, 'config.json'),
      json({
        ID: id,
        Created: time(i + 5),
        Path: 'sh',
        Args: [],
        Config: { Hostname: id.slice(0, 12), Cmd: ['sh'], Image: c.image },
        State: {
          Running: running,
          Paused: false,
          Restarting: false,
          OOMKilled: false,
          Dead: false,
          Pid: running ? 100 : 0,
          ExitCode: 0,
          Error: '',
          StartedAt: started ? time(i + 10) : '0001-01-01T00:00:00Z',
          FinishedAt: started && !running ? time(i + 11) : '0001-01-01T00:00:00Z',
        },
        Image: img.id,
        Name: `/${c.name}`,
        Driver: 'devicemapper',
        ExecDriver: 'native-0.2',
      }),
    );
    result.containers.push({ id, name: c.name, image: img, state: c.state });
  });
  if (spec.legacyJson) {
    write(path.join(dm, 'json'), json({ Devices: devices }));
  } else {
    for (const [hash, rec] of Object.entries(devices))
      write(path.join(dm, 'metadata', hash === '' ? 'base' : hash), json(rec));
    write(path.join(dm, 'metadata', 'deviceset-metadata'), json({ next_device_id: nextId }));
  }
  result.nextDeviceId = nextId;
  return result;
}

/**
 * Pool metadata for a built root, as thin_restore XML (thin-provisioning-tools' format): the base device, every
 * layer / init / container a snapshot sharing its parent's blocks plus some of its own, as Docker's pool would
 * hold them. pool: { orphans: [{ id, blocks }], missing: [deviceId...], transaction?, nrDataBlocks? }
 * Devices whose ids are in `missing` are left out of the pool (records without a device).
 */
export function poolXmlFor(result, pool = {}) {
  const missing = new Set(pool.missing ?? []);
  const byId = [...result.devices.entries()]
    .map(([hash, rec]) => ({ hash, id: rec.device_id, txn: rec.transaction_id }))
    .sort((a, b) => a.id - b.id);
  let nextData = 0;
  const alloc = (n) => {
    const d = nextData;
    nextData += n;
    return d;
  };
  const baseRun = { v: 0, d: alloc(64), len: 64 };
  const devices = [];
  let time = 0;
  for (const dev of byId) {
    if (missing.has(dev.id)) continue;
    const own = dev.hash === '' ? 0 : 2 + (dev.id % 5);
    const runs = [baseRun];
    if (own) runs.push({ v: 100 + dev.id * 10, d: alloc(own), len: own });
    const mapped = runs.reduce((n, r) => n + r.len, 0);
    devices.push({ id: dev.id, txn: Math.max(0, dev.txn - 1), created: time, snap: time + 1, runs, mapped });
    time++;
  }
  for (const o of pool.orphans ?? []) {
    devices.push({
      id: o.id,
      txn: time,
      created: time,
      snap: time,
      runs: [baseRun, { v: 500, d: alloc(o.blocks), len: o.blocks }],
      mapped: 64 + o.blocks,
    });
  }
  const lines = [
    `<superblock uuid="" time="${time + 1}" transaction="${pool.transaction ?? result.transactionId}" data_block_size="128" nr_data_blocks="${pool.nrDataBlocks ?? 16384}">`,
  ];
  for (const d of devices) {
    lines.push(
      `  <device dev_id="${d.id}" mapped_blocks="${d.mapped}" transaction="${d.txn}" creation_time="${d.created}" snap_time="${d.snap}">`,
    );
    for (const r of d.runs)
      lines.push(
        r.len === 1
          ? `    <single_mapping origin_block="${r.v}" data_block="${r.d}" time="${d.created}"/>`
          : `    <range_mapping origin_begin="${r.v}" data_begin="${r.d}" length="${r.len}" time="0"/>`,
      );
    lines.push('  </device>');
  }
  lines.push('</superblock>', '');
  return lines.join('\n');
}

/** Writes the pool's metadata with thin_restore (needs thin-provisioning-tools) at devicemapper/devicemapper/metadata. */
export function writePoolMetadata(root, xml, size = 4 * 1024 * 1024) {
  const dir = path.join(root, 'devicemapper', 'devicemapper');
  fs.mkdirSync(dir, { recursive: true });
  const meta = path.join(dir, 'metadata');
  const xmlFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dminspect-xml-')), 'pool.xml');
  fs.writeFileSync(xmlFile, xml);
  fs.writeFileSync(meta, '');
  fs.truncateSync(meta, size);
  const r = spawnSync('thin_restore', ['-i', xmlFile, '-o', meta], { encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(`thin_restore failed (is thin-provisioning-tools installed?): ${r.stderr || r.error}`);
  fs.rmSync(path.dirname(xmlFile), { recursive: true, force: true });
  return meta;
}

/** The sample's pool: one orphan holding space, one record whose device is gone. */
export const SAMPLE_POOL = { orphans: [{ id: 40, blocks: 48 }], missing: [15] };

/** The committed samples: fixtures/sample (≥ 1.10) and fixtures/legacy-v1 (pre-1.10). */
export const SAMPLE_SPEC = {
  images: [
    { name: 'busybox:latest', layers: ['busybox-base'] },
    { name: 'webapp:1.0', layers: ['busybox-base', 'webapp-bin', 'webapp-config'] },
  ],
  containers: [
    { name: 'web', image: 'webapp:1.0', state: 'running' },
    { name: 'batch-job', image: 'busybox:latest', state: 'exited', exitCode: 0 },
    { name: 'crashed', image: 'webapp:1.0', state: 'exited', exitCode: 137 },
    { name: 'draft', image: 'busybox:latest', state: 'created', size: 20 * 1024 ** 3 },
  ],
  extraRecords: [{ seed: 'removed-container', deleted: true }, { seed: 'leaked-layer' }, { seed: 'vanished' }],
  tmpFiles: ['.tmp3141592'],
};

export const LEGACY_SPEC = {
  images: [{ name: 'ubuntu:14.04', layers: ['ubuntu-1', 'ubuntu-2'] }],
  containers: [
    { name: 'old-db', image: 'ubuntu:14.04', state: 'running' },
    { name: 'old-task', image: 'ubuntu:14.04', state: 'exited' },
  ],
};
