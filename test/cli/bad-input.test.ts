import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildV2Root, sha } from '../../scripts/docker-root-builder.js';
import { EXIT_CODES } from '../../src/errors.js';
import { cli, cliJson, spawnCli, tmpDir } from '../support/cli.js';

const SPEC = {
  images: [{ name: 'busybox:latest', layers: ['b'] }],
  containers: [
    { name: 'web', image: 'busybox:latest', state: 'running' },
    { name: 'db', image: 'busybox:latest', state: 'exited' },
  ],
};

function freshRoot(): string {
  const dir = tmpDir();
  buildV2Root(dir, SPEC);
  return dir;
}

const recordOf = (root: string, name: string) => path.join(root, 'devicemapper/metadata', sha(`mount:${name}`));

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/^\s+at /m);
  return lines[0]!;
}

describe('bad device records', () => {
  const cases: [string, string, RegExp][] = [
    ['corrupt JSON', '{"device_id": 6, "size": }', /invalid JSON/],
    ['truncated JSON', '{"device_id": 6, "si', /invalid JSON/],
    ['an empty file', '', /empty file, expected JSON/],
    ['a JSON array', '[1,2]', /expected a JSON object/],
    [
      'a string device_id',
      '{"device_id":"6","size":10737418240,"transaction_id":1}',
      /"device_id" is "6", not an integer/,
    ],
    [
      'a fractional device_id',
      '{"device_id":6.5,"size":10737418240,"transaction_id":1}',
      /"device_id" is 6.5, not an integer/,
    ],
    [
      'a device_id above 24 bits',
      '{"device_id":16777216,"size":10737418240,"transaction_id":1}',
      /"device_id" 16777216 is outside the 24-bit range/,
    ],
    ['a negative device_id', '{"device_id":-1,"size":10737418240,"transaction_id":1}', /outside the 24-bit range/],
    ['a negative size', '{"device_id":6,"size":-512,"transaction_id":1}', /"size" is -512, not a non-negative integer/],
    ['a fractional size', '{"device_id":6,"size":1.5,"transaction_id":1}', /"size" is 1.5, not a non-negative integer/],
    ['a string size', '{"device_id":6,"size":"10G","transaction_id":1}', /"size" is "10G"/],
    ['a missing device_id', '{"size":1}', /missing "device_id"/],
    [
      'a non-boolean deleted',
      '{"device_id":6,"size":1,"transaction_id":1,"deleted":"yes"}',
      /"deleted" is "yes", not a boolean/,
    ],
  ];

  it.each(cases)(
    '%s: container fails with one line naming the file (exit 5); listings warn and go on',
    async (_what, content, pattern) => {
      const root = freshRoot();
      const file = recordOf(root, 'web');
      fs.writeFileSync(file, content);
      const r = await cli('container', 'web', '--root', root);
      expect(r.code).toBe(EXIT_CODES.BAD_INPUT);
      const line = oneLine(r.stderr);
      expect(line.startsWith(`dminspect: ${file}: `)).toBe(true);
      expect(line).toMatch(pattern);

      const list = await cli('devices', '--root', root);
      expect(list.code).toBe(0);
      expect(list.stderr).toContain(file);
      expect(list.stdout).toContain('container db'); // the other records still listed
      const json = await cliJson('containers', '--root', root);
      expect(json.containers).toHaveLength(2);
      expect(json.problems.map((p: { file: string }) => p.file)).toContain(file);
    },
  );
});

describe('bad layer store and container files', () => {
  it.each([
    ['not hex', 'xyz'],
    ['a path', '../../../etc'],
    ['too short', 'abc123'],
    ['upper case', 'A'.repeat(64)],
  ])('a mount-id that is %s is refused (exit 5)', async (_what, value) => {
    const root = freshRoot();
    const file = path.join(root, 'image/devicemapper/layerdb/mounts', sha('container:web'), 'mount-id');
    fs.writeFileSync(file, value);
    const r = await cli('container', 'web', '--root', root);
    expect(r.code).toBe(EXIT_CODES.BAD_INPUT);
    expect(oneLine(r.stderr)).toContain(`${file}: `);
    expect(r.stderr).toMatch(/is not a device hash \(64 hex digits, optionally -init\)/);
  });

  it('accepts a mount-id with a trailing newline and an -init id', async () => {
    const root = freshRoot();
    const file = path.join(root, 'image/devicemapper/layerdb/mounts', sha('container:web'), 'mount-id');
    fs.writeFileSync(file, `${sha('mount:web')}\n`);
    expect((await cliJson('container', 'web', '--root', root)).mountId).toBe(sha('mount:web'));
  });

  it('a corrupt config.v2.json: the container cannot be shown (exit 5), the list goes on', async () => {
    const root = freshRoot();
    const file = path.join(root, 'containers', sha('container:db'), 'config.v2.json');
    fs.writeFileSync(file, '{"ID": "');
    const r = await cli('container', sha('container:db'), '--root', root);
    expect(r.code).toBe(EXIT_CODES.BAD_INPUT);
    expect(oneLine(r.stderr)).toContain(`${file}: invalid JSON`);
    const list = await cli('containers', '--root', root);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain('web');
    expect(list.stderr).toContain(file);
  });

  it('a config whose ID does not match its directory is refused', async () => {
    const root = freshRoot();
    const file = path.join(root, 'containers', sha('container:db'), 'config.v2.json');
    const cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
    cfg.ID = sha('container:web');
    fs.writeFileSync(file, JSON.stringify(cfg));
    const r = await cli('container', sha('container:db'), '--root', root);
    expect(r.code).toBe(EXIT_CODES.BAD_INPUT);
    expect(r.stderr).toMatch(/does not match its directory/);
  });

  it('a missing device record is shown as a finding, not a crash', async () => {
    const root = freshRoot();
    fs.rmSync(recordOf(root, 'web'));
    const r = await cliJson('container', 'web', '--root', root);
    expect(r.device).toBeNull();
    expect(r.problems[0]).toMatch(/no device record/);
  });

  it('a layer parent loop is an error, not a hang', async () => {
    const root = freshRoot();
    const chain = fs.readdirSync(path.join(root, 'image/devicemapper/layerdb/sha256'))[0]!;
    fs.writeFileSync(path.join(root, 'image/devicemapper/layerdb/sha256', chain, 'parent'), `sha256:${chain}`);
    const r = await cliJson('container', 'web', '--root', root);
    expect(r.problems.join('\n')).toMatch(/its own ancestor/);
  });
});

describe('bad roots', () => {
  it('a missing root (exit 6)', async () => {
    const r = await cli('containers', '--root', '/nonexistent/docker');
    expect(r.code).toBe(EXIT_CODES.NOT_DOCKER_ROOT);
    expect(oneLine(r.stderr)).toBe(
      'dminspect: /nonexistent/docker: no such directory (use --root to name the Docker root)',
    );
  });

  it('an empty directory (exit 6)', async () => {
    const dir = tmpDir();
    const r = await cli('devices', '--root', dir);
    expect(r.code).toBe(EXIT_CODES.NOT_DOCKER_ROOT);
    expect(oneLine(r.stderr)).toMatch(/not a Docker root with devicemapper storage: no devicemapper\/ directory/);
  });

  it('an overlay2 root says which driver it uses', async () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'overlay2'));
    fs.mkdirSync(path.join(dir, 'containers'));
    const r = await cli('container', 'x', '--root', dir);
    expect(r.code).toBe(EXIT_CODES.NOT_DOCKER_ROOT);
    expect(r.stderr).toMatch(/it uses the overlay2 storage driver/);
  });

  it('a file as root', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'f');
    fs.writeFileSync(f, '');
    const r = await cli('containers', '--root', f);
    expect(r.code).toBe(EXIT_CODES.NOT_DOCKER_ROOT);
    expect(r.stderr).toMatch(/not a directory/);
  });

  it('unknown options are usage errors (exit 2)', async () => {
    const r = await cli('containers', '--bogus');
    expect(r.code).toBe(EXIT_CODES.USAGE);
    expect(r.stderr).toMatch(/unknown option/);
  });
});

describe('as a process', () => {
  beforeAll(() => {
    if (!fs.existsSync(path.join(__dirname, '../../dist/bundle/main.cjs'))) throw new Error('run npm run build first');
  });

  it('permission denied is one line and exit 7, no stack', () => {
    const root = freshRoot();
    fs.chmodSync(root, 0o755);
    for (const d of [path.dirname(root)]) fs.chmodSync(d, fs.statSync(d).mode | 0o011);
    fs.chmodSync(path.join(root, 'devicemapper/metadata'), 0o700);
    fs.chmodSync(path.join(root, 'containers'), 0o700);
    const r = spawnCli(['containers', '--root', root], { uid: 65534 });
    expect(r.code).toBe(EXIT_CODES.PERMISSION);
    expect(oneLine(r.stderr)).toMatch(/permission denied/);
  });

  it('a root that cannot be listed (search but no read permission) is the same one line and exit 7', () => {
    const root = freshRoot();
    fs.chmodSync(root, 0o711);
    for (const d of [path.dirname(root)]) fs.chmodSync(d, fs.statSync(d).mode | 0o011);
    const r = spawnCli(['containers', '--root', root], { uid: 65534 });
    expect(r.code).toBe(EXIT_CODES.PERMISSION);
    expect(oneLine(r.stderr)).toMatch(new RegExp(`${root}: permission denied \\(cannot list`));
  });

  it('--json errors carry the code on stdout; --debug adds the stack', () => {
    const r = spawnCli(['container', 'nosuch', '--root', freshRoot(), '--json']);
    expect(r.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'NOT_FOUND', exitCode: 3 });
    const d = spawnCli(['container', 'nosuch', '--root', freshRoot(), '--debug']);
    expect(d.stderr).toMatch(/^\s+at /m);
  });

  it('the demo command works from the built bin', () => {
    const r = spawnCli(['containers', '--root', path.join(__dirname, '../../fixtures/sample')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/web\s+webapp:1.0\s+running/);
  });
});
