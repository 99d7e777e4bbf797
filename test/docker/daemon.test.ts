import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildV2Root, sha } from '../../scripts/docker-root-builder.js';
import { connectDaemon } from '../../src/docker/daemon.js';
import { cli, cliJson, tmpDir } from '../support/cli.js';

/**
 * A FAKE Docker daemon (named as such): no dockerd can run with devicemapper on this kernel, so a unix-socket
 * HTTP server answers /info and /containers/<ref>/json in the shapes Docker 20.10 uses (GraphDriver.Data
 * values are strings). The kernel suite runs the same cross-check against a real dockerd 20.10.
 */
let server: http.Server;
let socket: string;
let root: string;
const graph: Record<string, { DeviceId: string; DeviceName: string; DeviceSize: string }> = {};

beforeAll(async () => {
  root = tmpDir();
  buildV2Root(root, {
    images: [{ name: 'busybox:latest', layers: ['b'] }],
    containers: [
      { name: 'web', image: 'busybox:latest', state: 'running' },
      { name: 'db', image: 'busybox:latest', state: 'exited' },
    ],
  });
  const rec = (name: string) =>
    JSON.parse(fs.readFileSync(path.join(root, 'devicemapper/metadata', sha(`mount:${name}`)), 'utf8'));
  graph[sha('container:web')] = {
    DeviceId: String(rec('web').device_id),
    DeviceName: `docker-8:1-42-${sha('mount:web')}`,
    DeviceSize: String(rec('web').size),
  };
  graph[sha('container:db')] = {
    DeviceId: String(rec('db').device_id + 100),
    DeviceName: `docker-8:1-42-${sha('mount:db')}`,
    DeviceSize: '1',
  };
  socket = path.join(tmpDir(), 'docker.sock');
  server = http.createServer((req, res) => {
    const url = (req.url ?? '').replace(/^\/v[\d.]+/, '');
    if (url === '/info') {
      res.end(
        JSON.stringify({
          ServerVersion: '20.10.24',
          Driver: 'devicemapper',
          DockerRootDir: root,
          DriverStatus: [
            ['Pool Name', 'docker-8:1-42-pool'],
            ['Data file', '/dev/loop0'],
          ],
        }),
      );
      return;
    }
    const m = /^\/containers\/([^/]+)\/json/.exec(url);
    const id = m
      ? Object.keys(graph).find(
          (k) =>
            k === m[1] ||
            k.startsWith(m[1]!) ||
            (m[1] === 'web' && k === sha('container:web')) ||
            (m[1] === 'db' && k === sha('container:db')),
        )
      : undefined;
    if (!id) {
      res.statusCode = 404;
      res.end(JSON.stringify({ message: 'No such container' }));
      return;
    }
    res.end(
      JSON.stringify({
        Id: id,
        Name: id === sha('container:web') ? '/web' : '/db',
        State: { Running: true },
        GraphDriver: { Name: 'devicemapper', Data: graph[id] },
      }),
    );
  });
  await new Promise<void>((r) => server.listen(socket, r));
});

afterAll(() => server?.close());

describe('live daemon (dockerode)', () => {
  it('no daemon is normal: null, no error', async () => {
    expect(await connectDaemon(`unix://${path.join(tmpDir(), 'none.sock')}`)).toBeNull();
    expect(await connectDaemon('tcp://127.0.0.1:1', 300)).toBeNull();
  });

  it('agreeing records: the daemon names the pool and resolves the ref', async () => {
    const r = await cliJson('container', 'web', '--root', root, '--host', `unix://${socket}`);
    expect(r.daemon).toMatchObject({ version: '20.10.24', rootDir: root, findings: [] });
    expect(r.pool).toMatchObject({ name: 'docker-8:1-42-pool', nameSource: 'daemon' });
    expect(r.device.name).toBe(r.daemon.graphDriver.deviceName); // the prefix comes from the daemon's pool name
  });

  it('disagreements are findings', async () => {
    const r = await cliJson('container', 'db', '--root', root, '--host', `unix://${socket}`);
    const f = r.daemon.findings.join('\n');
    expect(f).toMatch(/DeviceId: daemon \d+, record \d+/);
    expect(f).toMatch(/DeviceSize: daemon 1, record 10737418240/);
    const text = await cli('container', 'db', '--root', root, '--host', `unix://${socket}`);
    expect(text.stdout).toMatch(/daemon: +unix:\/\/.* \(Docker 20.10.24\): DISAGREES/);
  });

  it('a daemon serving another root is not used for this one', async () => {
    const other = tmpDir();
    buildV2Root(other, {
      images: [{ name: 'busybox:latest', layers: ['b'] }],
      containers: [{ name: 'web', image: 'busybox:latest', state: 'running' }],
    });
    const r = await cliJson('container', 'web', '--root', other, '--host', `unix://${socket}`);
    expect(r.daemon).toBeNull();
    expect(r.problems.join()).toMatch(/not cross-checked/);
  });

  it('--no-daemon does not ask', async () => {
    const r = await cliJson('container', 'web', '--root', root, '--host', `unix://${socket}`, '--no-daemon');
    expect(r.daemon).toBeNull();
  });
});
