import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildV1Root,
  buildV2Root,
  chainIds,
  LEGACY_SPEC,
  SAMPLE_SPEC,
  sha,
} from '../../scripts/docker-root-builder.js';
import { devicePrefix } from '../../src/docker/naming.js';
import { cli, cliJson, LEGACY, SAMPLE, tmpDir, treeDigest } from '../support/cli.js';

const webId = sha('container:web');
const webMount = sha('mount:web');

function samplePrefix(root = SAMPLE): string {
  const st = fs.statSync(path.join(root, 'devicemapper'), { bigint: true });
  return devicePrefix(st.dev, st.ino);
}

describe('container <ref> on the ≥1.10 sample', () => {
  it('resolves a full id, a prefix, a name and a /name to the same container', async () => {
    for (const ref of [webId, webId.slice(0, 5), 'web', '/web']) {
      const r = await cliJson('container', ref, '--root', SAMPLE);
      expect(r.id, ref).toBe(webId);
    }
  });

  it('shows every field of the chain container → mount id → device', async () => {
    const r = await cliJson('container', 'web', '--root', SAMPLE);
    const record = JSON.parse(fs.readFileSync(path.join(SAMPLE, 'devicemapper/metadata', webMount), 'utf8'));
    const prefix = samplePrefix();
    expect(r.name).toBe('web');
    expect(r.state.status).toBe('running');
    expect(r.state.running).toBe(true);
    expect(r.created).toMatch(/^2024-03-01T/);
    expect(r.layout).toBe('v2');
    expect(r.mountId).toBe(webMount);
    expect(r.device.deviceId).toBe(record.device_id);
    expect(r.device.size).toBe(record.size);
    expect(r.device.sectors).toBe(record.size / 512);
    expect(r.device.sizeHuman).toBe('10 GiB');
    expect(r.device.transactionId).toBe(record.transaction_id);
    expect(r.device.initialized).toBe(false);
    expect(r.device.deleted).toBe(false);
    expect(r.device.name).toBe(`${prefix}-${webMount}`);
    expect(r.device.devPath).toBe(`/dev/mapper/${prefix}-${webMount}`);
    expect(r.pool.name).toBe(`${prefix}-pool`);
    expect(r.pool.nameSource).toBe('stat');
    expect(r.device.table).toBe(`0 ${record.size / 512} thin /dev/mapper/${prefix}-pool ${record.device_id}`);
    const initRecord = JSON.parse(
      fs.readFileSync(path.join(SAMPLE, 'devicemapper/metadata', `${webMount}-init`), 'utf8'),
    );
    expect(r.init).toEqual({ hash: `${webMount}-init`, deviceId: initRecord.device_id });
    expect(r.mount.mounted).toBe(false);
    expect(r.problems).toEqual([]);
  });

  it('lists the image layer chain top first: chain id → cache id → device id', async () => {
    const r = await cliJson('container', 'web', '--root', SAMPLE);
    const diffs = SAMPLE_SPEC.images[1]!.layers.map((s) => sha(`diff:${s}`));
    const chains = chainIds(diffs).reverse();
    expect(r.layers.map((l: { chainId: string }) => l.chainId)).toEqual(chains);
    for (const l of r.layers) {
      expect(l.cacheId).toBe(sha(`cache:${l.chainId}`));
      const rec = JSON.parse(fs.readFileSync(path.join(SAMPLE, 'devicemapper/metadata', l.cacheId), 'utf8'));
      expect(l.deviceId).toBe(rec.device_id);
    }
    expect(r.image.names).toEqual(['webapp:1.0']);
    expect(r.image.configImage).toBe('webapp:1.0');
    expect(r.image.id).toMatch(/^[a-f0-9]{64}$/);
  });

  it('reports exited and created states and a per-container size', async () => {
    const crashed = await cliJson('container', 'crashed', '--root', SAMPLE);
    expect(crashed.state.status).toBe('exited');
    expect(crashed.state.exitCode).toBe(137);
    const draft = await cliJson('container', 'draft', '--root', SAMPLE);
    expect(draft.state.status).toBe('created');
    expect(draft.state.exitCode).toBeNull();
    expect(draft.device.size).toBe(20 * 1024 ** 3);
    expect(draft.device.sectors).toBe(41943040);
  });

  it('prints a human report with sizes in bytes, sectors and units, and the table line', async () => {
    const r = await cli('container', 'web', '--root', SAMPLE);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`mount id:    ${webMount}`);
    expect(r.stdout).toContain('size:        10737418240 bytes = 20971520 sectors (10 GiB)');
    expect(r.stdout).toMatch(/table: +0 20971520 thin \/dev\/mapper\/docker-\d+:\d+-\d+-pool \d+/);
    expect(r.stdout).toContain('image layers (top first):');
  });

  it('uses --pool and dm.thinpooldev from --daemon-config for the pool name', async () => {
    const a = await cliJson('container', 'web', '--root', SAMPLE, '--pool', '/dev/mapper/docker-thinpool');
    expect(a.pool.name).toBe('docker-thinpool');
    expect(a.device.table).toMatch(/thin \/dev\/mapper\/docker-thinpool \d+$/);
    const dir = tmpDir();
    const cfg = path.join(dir, 'daemon.json');
    fs.writeFileSync(
      cfg,
      JSON.stringify({
        'storage-driver': 'devicemapper',
        'storage-opts': ['dm.fs=xfs', 'dm.thinpooldev=/dev/mapper/vg-docker--pool'],
      }),
    );
    const b = await cliJson('container', 'web', '--root', SAMPLE, '--daemon-config', cfg);
    expect(b.pool).toMatchObject({ name: 'vg-docker--pool', nameSource: 'daemon-config' });
    // device names keep Docker's own prefix even with an external pool
    expect(b.device.name).toBe(`${samplePrefix()}-${webMount}`);
  });

  it('writes nothing under the Docker root', async () => {
    const before = treeDigest(SAMPLE);
    await cli('container', 'web', '--root', SAMPLE);
    await cli('containers', '--root', SAMPLE);
    await cli('devices', '--root', SAMPLE, '--json');
    expect(treeDigest(SAMPLE)).toEqual(before);
  });
});

describe('references', () => {
  it('an ambiguous prefix lists the candidates (exit 4)', async () => {
    const dir = tmpDir();
    buildV2Root(dir, {
      images: [{ name: 'busybox:latest', layers: ['b'] }],
      containers: [
        { name: 'one', image: 'busybox:latest', state: 'exited', id: 'abc1' + 'a'.repeat(60) },
        { name: 'two', image: 'busybox:latest', state: 'exited', id: 'abc2' + 'b'.repeat(60) },
      ],
    });
    const r = await cli('container', 'abc', '--root', dir);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('"abc" matches 2 containers');
    expect(r.stderr).toContain('abc1aaaaaaaa');
    expect(r.stderr).toContain('abc2bbbbbbbb');
    expect((await cli('container', 'abc1', '--root', dir)).code).toBe(0);
  });

  it('a name wins over an id prefix, as in Docker', async () => {
    const dir = tmpDir();
    buildV2Root(dir, {
      images: [{ name: 'busybox:latest', layers: ['b'] }],
      containers: [
        { name: 'beef', image: 'busybox:latest', state: 'exited', id: 'c'.repeat(64) },
        { name: 'other', image: 'busybox:latest', state: 'exited', id: 'beef' + 'd'.repeat(60) },
      ],
    });
    expect((await cliJson('container', 'beef', '--root', dir)).id).toBe('c'.repeat(64));
  });

  it('an unknown ref is exit 3', async () => {
    const r = await cli('container', 'nosuch', '--root', SAMPLE);
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toBe(`dminspect: no container "nosuch" in ${SAMPLE} (by id, name or id prefix)`);
  });

  it.each(['../../etc', '/etc/passwd', 'a/b', '..', 'x\0y', ''])(
    'a path-like ref %j is refused (exit 2)',
    async (ref) => {
      const r = await cli('container', ref, '--root', SAMPLE);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/invalid container reference/);
    },
  );
});

describe('pre-1.10 layouts', () => {
  it('container: device hash = container id, init = <id>-init, layers = image ids', async () => {
    const id = sha('v1container:old-db');
    const r = await cliJson('container', 'old-db', '--root', LEGACY);
    expect(r.id).toBe(id);
    expect(r.layout).toBe('v1');
    expect(r.mountId).toBe(id);
    expect(r.init.hash).toBe(`${id}-init`);
    expect(r.device.deleted).toBeNull(); // the key did not exist before Docker 1.9
    const top = sha(`v1image:${sha('v1image:null:ubuntu-1')}:ubuntu-2`);
    expect(r.image.id).toBe(top);
    expect(r.image.names).toEqual(['ubuntu:14.04']);
    expect(r.layers.map((l: { cacheId: string }) => l.cacheId)).toEqual([top, sha('v1image:null:ubuntu-1')]);
    expect(r.layers.every((l: { deviceId: number | null }) => typeof l.deviceId === 'number')).toBe(true);
  });

  it('reads the pre-1.4 single devicemapper/json', async () => {
    const dir = tmpDir();
    const built = buildV1Root(dir, { ...LEGACY_SPEC, legacyJson: true });
    const c = built.containers[0]!;
    const r = await cliJson('container', c.name, '--root', dir);
    expect(r.device.deviceId).toBe(built.devices[c.id].device_id);
    expect(r.device.recordFile).toBe(path.join(dir, 'devicemapper', 'json') + '#' + c.id);
    const d = await cliJson('devices', '--root', dir);
    expect(d.devices).toHaveLength(Object.keys(built.devices).length);
  });
});
