import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildV2Root, sha } from '../../scripts/docker-root-builder.js';
import { cli, cliJson, LEGACY, REPO, SAMPLE, tmpDir, treeDigest } from '../support/cli.js';

describe('containers', () => {
  it('lists one row per container, oldest first, with device id, size and device hash', async () => {
    const r = await cliJson('containers', '--root', SAMPLE);
    expect(r.containers.map((c: { name: string }) => c.name)).toEqual(['web', 'batch-job', 'crashed', 'draft']);
    const web = r.containers[0];
    const rec = JSON.parse(fs.readFileSync(path.join(SAMPLE, 'devicemapper/metadata', sha('mount:web')), 'utf8'));
    expect(web).toMatchObject({
      id: sha('container:web'),
      image: 'webapp:1.0',
      state: 'running',
      mountId: sha('mount:web'),
      deviceId: rec.device_id,
      size: rec.size,
      sizeHuman: '10 GiB',
      deleted: false,
    });
    expect(r.containers.map((c: { state: string }) => c.state)).toEqual(['running', 'exited', 'exited', 'created']);
    expect(r.problems).toEqual([]);
  });

  it('prints a table with short ids', async () => {
    const r = await cli('containers', '--root', SAMPLE);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^CONTAINER\s+NAME\s+IMAGE\s+STATE\s+DEVICE ID\s+SIZE\s+DEVICE HASH$/);
    expect(lines[1]).toMatch(
      new RegExp(
        `^${sha('container:web').slice(0, 12)}\\s+web\\s+webapp:1.0\\s+running\\s+\\d+\\s+10 GiB\\s+${sha('mount:web').slice(0, 12)}$`,
      ),
    );
    expect(lines).toHaveLength(5);
  });

  it('lists the pre-1.10 layout', async () => {
    const r = await cliJson('containers', '--root', LEGACY);
    expect(
      r.containers.map((c: { name: string; mountId: string; id: string }) => [c.name, c.mountId === c.id]),
    ).toEqual([
      ['old-db', true],
      ['old-task', true],
    ]);
    expect(r.containers[0].image).toBe('ubuntu:14.04');
  });
});

describe('devices', () => {
  it('gives every record its role', async () => {
    const r = await cliJson('devices', '--root', SAMPLE);
    const byHash = new Map(r.devices.map((d: { hash: string }) => [d.hash, d]));
    const files = fs
      .readdirSync(path.join(SAMPLE, 'devicemapper/metadata'))
      .filter((f) => !f.startsWith('.') && !f.endsWith('-metadata'));
    expect(r.devices).toHaveLength(files.length);
    expect(byHash.get('')).toMatchObject({ role: 'base', recordName: 'base', initialized: true, owner: 'base device' });
    expect(byHash.get(sha('mount:web'))).toMatchObject({
      role: 'container',
      containerName: 'web',
      owner: 'container web',
    });
    expect(byHash.get(`${sha('mount:web')}-init`)).toMatchObject({
      role: 'init',
      containerName: 'web',
      owner: 'init of container web',
    });
    const shared = r.devices.filter(
      (d: { role: string; imageNames: string[] }) => d.role === 'layer' && d.imageNames.length === 2,
    );
    expect(shared).toHaveLength(1); // the base layer both images share
    expect(shared[0].imageNames.sort()).toEqual(['busybox:latest', 'webapp:1.0']);
    const deleted = byHash.get(sha('extra:removed-container'));
    expect(deleted).toMatchObject({ role: 'unreferenced', deleted: true });
    expect(byHash.get(sha('extra:leaked-layer'))).toMatchObject({ role: 'unreferenced', deleted: false });
    expect(r.tmpFiles).toEqual([path.join(SAMPLE, 'devicemapper/metadata/.tmp3141592')]);
    expect(r.nextDeviceId).toBe(Math.max(...r.devices.map((d: { deviceId: number }) => d.deviceId)));
    expect(r.transaction.openTransactionId).toBeGreaterThan(0);
  });

  it('table view names roles in words and warns about the stale temp file', async () => {
    const r = await cli('devices', '--root', SAMPLE);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/image layer of busybox:latest, webapp:1.0|image layer of webapp:1.0, busybox:latest/);
    expect(r.stdout).toMatch(/unreferenced\s+10 GiB\s+\d+\s+yes/);
    expect(r.stderr).toContain('stale temporary file');
  });

  it('pre-1.10: containers, inits and image ids', async () => {
    const r = await cliJson('devices', '--root', LEGACY);
    const roles = r.devices.map((d: { role: string }) => d.role).sort();
    expect(roles).toEqual(['base', 'container', 'container', 'init', 'init', 'layer', 'layer']);
    expect(r.devices.every((d: { deleted: unknown }) => d.deleted === null)).toBe(true);
  });
});

describe('fixtures', () => {
  it('the committed samples are what scripts/make-fixtures.js makes', async () => {
    const { SAMPLE_SPEC, SAMPLE_POOL, LEGACY_SPEC, buildV1Root, poolXmlFor, writePoolMetadata } =
      await import('../../scripts/docker-root-builder.js');
    const a = tmpDir();
    writePoolMetadata(a, poolXmlFor(buildV2Root(a, SAMPLE_SPEC), SAMPLE_POOL));
    expect(treeDigest(a)).toEqual(treeDigest(SAMPLE));
    const b = tmpDir();
    buildV1Root(b, LEGACY_SPEC);
    expect(treeDigest(b)).toEqual(treeDigest(path.join(REPO, 'fixtures/legacy-v1')));
  });
});
