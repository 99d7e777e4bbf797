import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildV2Root } from '../../scripts/docker-root-builder.js';
import { EXIT_CODES } from '../../src/errors.js';
import {
  escapeLabelValue,
  FINDING_SEVERITIES,
  readLastSuccess,
  renderFailureMetrics,
  renderMetrics,
  TEXTFILE_NAME,
} from '../../src/audit/metrics.js';
import type { PoolDevice, PoolReport } from '../../src/audit/pool.js';
import { BIN, cli, cliJson, REPO, SAMPLE, spawnCli } from '../support/cli.js';
import { parseExposition, PROMTOOL, PROMTOOL_SKIP, promtoolCheckMetrics, series, tmpDir, value } from './helpers.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  return lines[0]!;
}

function device(over: Partial<PoolDevice>): PoolDevice {
  return {
    deviceId: 1,
    role: 'container',
    owner: '',
    hash: null,
    containerId: null,
    containerName: null,
    mappedBlocks: 1,
    exclusiveBlocks: 1,
    sharedBlocks: 0,
    mappedBytes: 65536,
    exclusiveBytes: 65536,
    sharedBytes: 0,
    transactionId: 1,
    creationTime: 1,
    snapTime: 1,
    size: null,
    ...over,
  };
}

function report(devices: PoolDevice[], over: Partial<PoolReport> = {}): PoolReport {
  const space = {
    totalBlocks: 10,
    usedBlocks: 5,
    freeBlocks: 5,
    totalBytes: 655360,
    usedBytes: 327680,
    freeBytes: 327680,
    usedPercent: 50,
  };
  const metadata = { ...space, allocatedBlocks: 4, reserveBlocks: 1, kernelRule: 'reserve' as const };
  return {
    metadataFile: '/m',
    dataFile: null,
    root: '/r',
    poolName: 'docker-thinpool',
    metadataSnap: false,
    version: 2,
    time: 1,
    transactionId: 7,
    needsCheck: false,
    heldMetadataSnapshot: null,
    dataBlockSectors: 128,
    dataBlockBytes: 65536,
    data: space,
    metadata,
    devices,
    findings: [],
    spaceMapProblems: [],
    lvm: null,
    live: null,
    ...over,
  };
}

/** Builds the CLI once per run (bin/dminspect.js runs dist/). */
function requireBuilt(): void {
  if (
    !fs.existsSync(path.join(REPO, 'dist/audit/metrics.js')) ||
    !fs.existsSync(path.join(REPO, 'dist/bundle/main.cjs'))
  )
    throw new Error('dist/ has no metrics or no bundle: run npm run build first');
}

/** A Docker root whose pool cannot be read: no metadata (NOT_FOUND), or a copy of the sample's with a corrupt superblock (BAD_INPUT). */
function badRoot(kind: 'no-metadata' | 'corrupt'): string {
  const dir = tmpDir('dminspect-badroot-');
  if (kind === 'no-metadata') {
    buildV2Root(dir, {
      images: [{ name: 'busybox:latest', layers: ['b'] }],
      containers: [{ name: 'web', image: 'busybox:latest', state: 'running' }],
    });
    return dir;
  }
  fs.cpSync(SAMPLE, dir, { recursive: true });
  const meta = path.join(dir, 'devicemapper/devicemapper/metadata');
  const fd = fs.openSync(meta, 'r+');
  fs.writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, 32); // inside the superblock: the checksum no longer matches
  fs.closeSync(fd);
  return dir;
}

describe('rendering', () => {
  it('escapes label values (backslash, double quote, line feed) and keeps them bounded', () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const nasty = 'we"ird\\name\nx';
    const text = renderMetrics(
      report([
        device({ deviceId: 6, containerName: nasty, containerId: 'ABCDEF0123456789'.repeat(4) }),
        device({ deviceId: 7, role: 'layer', containerName: null }),
        device({ deviceId: 8, role: 'init', containerName: 'long'.repeat(100), containerId: 'not-hex' }),
      ]),
      { durationSeconds: 0.5, lastSuccessSeconds: 1700000000 },
    );
    const p = parseExposition(text);
    const d6 = series(p, 'dminspect_device_mapped_bytes', { device_id: '6' })[0]!;
    expect(d6.labels).toEqual({
      pool: 'docker-thinpool',
      device_id: '6',
      role: 'container',
      container: 'we"ird\\name?x',
      container_id: 'abcdef012345',
    });
    expect(series(p, 'dminspect_device_mapped_bytes', { device_id: '7' })[0]!.labels).toEqual({
      pool: 'docker-thinpool',
      device_id: '7',
      role: 'image_layer',
    });
    const d8 = series(p, 'dminspect_device_mapped_bytes', { device_id: '8' })[0]!.labels;
    expect(d8.container).toHaveLength(128);
    expect(d8.container_id).toBeUndefined();
    if (PROMTOOL) expect(promtoolCheckMetrics(text)).toEqual({ code: 0, output: '' });
  });

  it('every family has HELP and TYPE gauge, base units, no _total; a findings series for every kind and severity', () => {
    const p = parseExposition(
      renderMetrics(
        report([device({})], {
          findings: [{ kind: 'orphan-device', severity: 'warning', message: '', evidence: {}, remedy: '' }],
        }),
        { durationSeconds: 1, lastSuccessSeconds: 2 },
      ),
    );
    const names = new Set(p.samples.map((s) => s.name));
    for (const n of names) {
      expect(p.help.get(n), n).toBeTruthy();
      expect(p.type.get(n), n).toBe('gauge');
      expect(n).toMatch(/^dminspect_[a-z_]+$/);
      expect(n).not.toMatch(/_total$/);
    }
    const pairs = Object.entries(FINDING_SEVERITIES).flatMap(([k, sevs]) => sevs.map((s) => `${k}/${s}`));
    expect(
      series(p, 'dminspect_findings')
        .map((s) => `${s.labels.kind}/${s.labels.severity}`)
        .sort(),
    ).toEqual(pairs.sort());
    expect(value(p, 'dminspect_findings', { kind: 'orphan-device' })).toBe(1);
    expect(value(p, 'dminspect_findings', { kind: 'needs-check' })).toBe(0);
  });

  it('a failure is dminspect_up 0 with the error code, the duration, and the carried-over last success', () => {
    const p = parseExposition(
      renderFailureMetrics('docker-thinpool', 'BAD_INPUT', { durationSeconds: 0.25, lastSuccessSeconds: 1700000000.5 }),
    );
    expect(series(p, 'dminspect_up')).toEqual([
      { name: 'dminspect_up', labels: { pool: 'docker-thinpool', error: 'BAD_INPUT' }, value: 0 },
    ]);
    expect(value(p, 'dminspect_run_duration_seconds')).toBe(0.25);
    expect(value(p, 'dminspect_last_success_timestamp_seconds')).toBe(1700000000.5);
    expect(
      series(
        parseExposition(renderFailureMetrics(null, 'internal', { durationSeconds: 0, lastSuccessSeconds: null })),
        'dminspect_last_success_timestamp_seconds',
      ),
    ).toEqual([]);
  });

  it('readLastSuccess reads the value back whatever the labels, and null for a missing or foreign file', () => {
    const d = tmpDir();
    const f = path.join(d, 'x.prom');
    fs.writeFileSync(f, renderFailureMetrics('p"}q', 'IO', { durationSeconds: 1, lastSuccessSeconds: 1234.5 }));
    expect(readLastSuccess(f)).toBe(1234.5);
    fs.writeFileSync(f, 'foo 1\n');
    expect(readLastSuccess(f)).toBeNull();
    expect(readLastSuccess(path.join(d, 'none'))).toBeNull();
  });
});

describe('pool --format prometheus / --textfile on the sample root', () => {
  it.skipIf(!PROMTOOL)('promtool check metrics finds no problem in the output', async () => {
    const r = await cli('pool', '--root', SAMPLE, '--format', 'prometheus');
    expect(r.code).toBe(0);
    expect(promtoolCheckMetrics(r.stdout)).toEqual({ code: 0, output: '' });
  });
  if (!PROMTOOL) it.skip(PROMTOOL_SKIP, () => {});

  it('the numbers are the pool report’s', async () => {
    const rep = await cliJson('pool', '--root', SAMPLE);
    const r = await cli('pool', '--root', SAMPLE, '--format', 'prometheus');
    const p = parseExposition(r.stdout);
    const pool = { pool: rep.poolName }; // derived from the stat of this checkout's sample: differs per clone
    expect(value(p, 'dminspect_up', pool)).toBe(1);
    expect(value(p, 'dminspect_pool_data_bytes', pool)).toBe(rep.data.totalBytes);
    expect(value(p, 'dminspect_pool_data_used_bytes', pool)).toBe(rep.data.usedBytes);
    expect(value(p, 'dminspect_pool_metadata_bytes', pool)).toBe(rep.metadata.totalBytes);
    expect(value(p, 'dminspect_pool_metadata_used_bytes', pool)).toBe(rep.metadata.usedBytes);
    // used (what the alerts read) is the kernel's count: allocated on disk + the kernel's reserve
    expect(value(p, 'dminspect_pool_metadata_allocated_bytes', pool)).toBe(rep.metadata.allocatedBlocks * 4096);
    expect(value(p, 'dminspect_pool_metadata_reserve_bytes', pool)).toBe(rep.metadata.reserveBlocks * 4096);
    expect(rep.metadata.reserveBlocks).toBeGreaterThan(0);
    expect(value(p, 'dminspect_pool_metadata_used_bytes', pool)).toBe(
      (rep.metadata.allocatedBlocks + rep.metadata.reserveBlocks) * 4096,
    );
    expect(value(p, 'dminspect_pool_transaction_id', pool)).toBe(15);
    expect(value(p, 'dminspect_pool_needs_check', pool)).toBe(0);
    expect(series(p, 'dminspect_device_exclusive_bytes')).toHaveLength(rep.devices.length);
    for (const d of rep.devices) {
      const labels = { device_id: String(d.deviceId) };
      expect(value(p, 'dminspect_device_mapped_bytes', labels)).toBe(d.mappedBytes);
      expect(value(p, 'dminspect_device_exclusive_bytes', labels)).toBe(d.exclusiveBytes);
    }
    expect(series(p, 'dminspect_device_exclusive_bytes', { device_id: '40' })[0]!.labels).toEqual({
      ...pool,
      device_id: '40',
      role: 'orphan',
    });
    expect(series(p, 'dminspect_device_exclusive_bytes', { device_id: '6' })[0]!.labels).toEqual({
      ...pool,
      device_id: '6',
      role: 'container',
      container: 'web',
      container_id: '3edafbdfe8db',
    });
    expect(series(p, 'dminspect_device_exclusive_bytes', { device_id: '5' })[0]!.labels).toMatchObject({
      role: 'init',
      container: 'web',
    });
    expect(new Set(series(p, 'dminspect_device_mapped_bytes').map((s) => s.labels.role))).toEqual(
      new Set(['base', 'image_layer', 'init', 'container', 'unreferenced', 'orphan']),
    );
    // no hashes as label values: every value is short
    for (const s of p.samples) for (const v of Object.values(s.labels)) expect(v.length, v).toBeLessThanOrEqual(40);
    const kinds = new Map<string, number>();
    for (const f of rep.findings) kinds.set(`${f.kind}/${f.severity}`, (kinds.get(`${f.kind}/${f.severity}`) ?? 0) + 1);
    for (const s of series(p, 'dminspect_findings'))
      expect(s.value, `${s.labels.kind}/${s.labels.severity}`).toBe(
        kinds.get(`${s.labels.kind}/${s.labels.severity}`) ?? 0,
      );
    expect(value(p, 'dminspect_findings', { kind: 'orphan-device', severity: 'warning' })).toBe(1);
    expect(value(p, 'dminspect_findings', { kind: 'record-without-device', severity: 'warning' })).toBe(1);
    expect(value(p, 'dminspect_run_duration_seconds')).toBeGreaterThan(0);
    expect(Math.abs(value(p, 'dminspect_last_success_timestamp_seconds') - Date.now() / 1000)).toBeLessThan(60);
  });

  it('--textfile writes DIR/dminspect.prom (mode 0644, no temporary left) and prints nothing unless a format is asked', async () => {
    const dir = tmpDir();
    const r = await cli('pool', '--root', SAMPLE, '--textfile', dir);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(fs.readdirSync(dir)).toEqual([TEXTFILE_NAME]);
    expect(fs.statSync(path.join(dir, TEXTFILE_NAME)).mode & 0o777).toBe(0o644);
    expect(value(parseExposition(fs.readFileSync(path.join(dir, TEXTFILE_NAME), 'utf8')), 'dminspect_up')).toBe(1);
    const t = await cli('pool', '--root', SAMPLE, '--textfile', dir, '--format', 'table');
    expect(t.stdout).toMatch(/^pool: +docker-\d+:\d+-\d+-pool$/m);
    const j = await cli('pool', '--root', SAMPLE, '--textfile', dir, '--json');
    expect(JSON.parse(j.stdout).transactionId).toBe(15);
  });

  it('a temporary left by a killed run is removed once it is an hour old; a fresh one is not', async () => {
    const dir = tmpDir();
    const old = path.join(dir, `.${TEXTFILE_NAME}.123.abc.tmp`);
    const fresh = path.join(dir, `.${TEXTFILE_NAME}.456.def.tmp`);
    fs.writeFileSync(old, 'dminspect_up 1');
    fs.writeFileSync(fresh, 'dminspect_up 1');
    fs.utimesSync(old, new Date(Date.now() - 2 * 3600_000), new Date(Date.now() - 2 * 3600_000));
    expect((await cli('pool', '--root', SAMPLE, '--textfile', dir)).code).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual([path.basename(fresh), TEXTFILE_NAME].sort());
  });

  it('--json is unchanged and conflicts with another --format', async () => {
    const a = await cli('pool', '--root', SAMPLE, '--json');
    const b = await cli('pool', '--root', SAMPLE, '--format', 'json');
    expect(JSON.parse(a.stdout)).toEqual(JSON.parse(b.stdout));
    const c = await cli('pool', '--root', SAMPLE, '--json', '--format', 'prometheus');
    expect(c.code).toBe(EXIT_CODES.USAGE);
    expect(oneLine(c.stderr)).toMatch(/--json and --format prometheus/);
    const d = await cli('pool', '--root', SAMPLE, '--format', 'xml');
    expect(d.code).toBe(EXIT_CODES.USAGE);
  });
});

describe('an unreadable pool still writes a valid file with dminspect_up 0, and fails with the error’s exit status', () => {
  it.each([
    ['no metadata', 'no-metadata', 'NOT_FOUND'],
    ['corrupt metadata', 'corrupt', 'BAD_INPUT'],
  ] as const)('%s', async (_what, kind, code) => {
    const root = badRoot(kind);
    const dir = tmpDir();
    // a previous successful run left its last-success timestamp
    expect((await cli('pool', '--root', SAMPLE, '--textfile', dir)).code).toBe(0);
    const before = readLastSuccess(path.join(dir, TEXTFILE_NAME))!;
    expect(before).toBeGreaterThan(0);

    const r = await cli('pool', '--root', root, '--textfile', dir);
    expect(r.code).toBe(EXIT_CODES[code]);
    expect(oneLine(r.stderr)).toMatch(/^dminspect: .*metadata/);
    expect(r.stdout).toBe('');
    const text = fs.readFileSync(path.join(dir, TEXTFILE_NAME), 'utf8');
    const p = parseExposition(text);
    expect(series(p, 'dminspect_up')).toEqual([
      {
        name: 'dminspect_up',
        labels: { pool: expect.stringMatching(/^docker-\d+:\d+-\d+-pool$/), error: code },
        value: 0,
      },
    ]);
    expect(value(p, 'dminspect_last_success_timestamp_seconds')).toBe(before);
    expect(value(p, 'dminspect_run_duration_seconds')).toBeGreaterThanOrEqual(0);
    expect(series(p, 'dminspect_pool_data_bytes')).toEqual([]);
    if (PROMTOOL) expect(promtoolCheckMetrics(text)).toEqual({ code: 0, output: '' });
    expect(fs.readdirSync(dir)).toEqual([TEXTFILE_NAME]);

    // again: the carried-over timestamp survives a second failure
    await cli('pool', '--root', root, '--textfile', dir);
    expect(readLastSuccess(path.join(dir, TEXTFILE_NAME))).toBe(before);
  });

  it('without a previous file there is no last-success series; --format prometheus prints the same on stdout', async () => {
    const dir = tmpDir();
    const r = await cli('pool', '--root', badRoot('no-metadata'), '--textfile', dir, '--format', 'prometheus');
    expect(r.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(r.stdout).toBe(fs.readFileSync(path.join(dir, TEXTFILE_NAME), 'utf8'));
    const p = parseExposition(r.stdout);
    expect(series(p, 'dminspect_last_success_timestamp_seconds')).toEqual([]);
    expect(value(p, 'dminspect_up', { error: 'NOT_FOUND' })).toBe(0);
    const s = await cli('pool', '--root', path.join(dir, 'nosuch'), '--format', 'prometheus');
    expect(s.code).toBe(EXIT_CODES.NOT_DOCKER_ROOT);
    expect(value(parseExposition(s.stdout), 'dminspect_up', { error: 'NOT_DOCKER_ROOT', pool: '' })).toBe(0);
  });
});

describe('an unwritable textfile directory is one clear line', () => {
  it('a missing directory: IO (exit 10), naming it', async () => {
    const dir = path.join(tmpDir(), 'nosuch');
    const r = await cli('pool', '--root', SAMPLE, '--textfile', dir);
    expect(r.code).toBe(EXIT_CODES.IO);
    expect(oneLine(r.stderr)).toBe(`dminspect: ${dir}: cannot write the metrics textfile: no such directory`);
  });

  it('a file, not a directory: IO (exit 10)', async () => {
    const f = path.join(tmpDir(), 'file');
    fs.writeFileSync(f, '');
    const r = await cli('pool', '--root', SAMPLE, '--textfile', f);
    expect(r.code).toBe(EXIT_CODES.IO);
    expect(oneLine(r.stderr)).toMatch(/cannot write the metrics textfile: not a directory$/);
  });

  it('a read-only directory: PERMISSION (exit 7); with an unreadable pool too, both errors are told', async () => {
    requireBuilt();
    const dir = tmpDir();
    fs.chmodSync(dir, 0o555);
    const run = (args: string[]) => (isRoot ? spawnCli(args, { uid: 65534 }) : spawnCli(args));
    const r = run(['pool', '--root', SAMPLE, '--textfile', dir]);
    expect(r.code).toBe(EXIT_CODES.PERMISSION);
    expect(oneLine(r.stderr)).toBe(`dminspect: ${dir}: cannot write the metrics textfile: permission denied`);
    expect(fs.readdirSync(dir)).toEqual([]);
    const bad = badRoot('no-metadata');
    fs.chmodSync(bad, 0o755);
    const b = run(['pool', '--root', bad, '--textfile', dir]);
    expect(b.code).toBe(EXIT_CODES.PERMISSION);
    expect(b.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/no loop-lvm pool metadata/),
      `dminspect: ${dir}: cannot write the metrics textfile: permission denied`,
    ]);
  });
});

describe('concurrent runs never leave a partial file', () => {
  beforeAll(requireBuilt);

  it('20 processes write the same directory while a reader checks every read is whole', async () => {
    const dir = tmpDir();
    const bad = badRoot('corrupt');
    // The shape of a whole file (values stripped), for a good run and a failed one.
    const shape = (t: string) => t.replace(/ \S+$/gm, ' V');
    const good = (await cli('pool', '--root', SAMPLE, '--format', 'prometheus')).stdout;
    const shapes = new Set([shape(good)]);
    const failed = await cli('pool', '--root', bad, '--format', 'prometheus');
    const badPool = /pool="([^"]*)"/.exec(failed.stdout)![1]!;
    for (const last of [1, null])
      shapes.add(shape(renderFailureMetrics(badPool, 'BAD_INPUT', { durationSeconds: 1, lastSuccessSeconds: last })));

    const writers = Array.from(
      { length: 20 },
      (_v, i) =>
        new Promise<number>((resolve, reject) => {
          const root = i % 4 === 3 ? bad : SAMPLE; // 15 good runs and 5 failing ones
          const p = spawn(process.execPath, [BIN, 'pool', '--root', root, '--textfile', dir], {
            stdio: ['ignore', 'ignore', 'pipe'],
          });
          let err = '';
          p.stderr.on('data', (b: Buffer) => (err += b.toString()));
          p.on('error', reject);
          p.on('exit', (code) =>
            root === SAMPLE && code !== 0
              ? reject(new Error(`writer ${i} exited ${code}: ${err}`))
              : resolve(code ?? -1),
          );
        }),
    );
    let running = true;
    const all = Promise.all(writers).finally(() => (running = false));
    let reads = 0;
    const distinct = new Set<string>();
    const target = path.join(dir, TEXTFILE_NAME);
    while (running) {
      let text: string | null = null;
      try {
        text = fs.readFileSync(target, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      if (text !== null) {
        reads++;
        expect(text.endsWith('\n'), text.slice(-200)).toBe(true);
        expect(text).toMatch(/^dminspect_up\{[^}]*\} [01]$/m);
        expect(shapes.has(shape(text)), `a read that is not a whole file:\n${text}`).toBe(true);
        if (distinct.size < 5) distinct.add(text);
      }
      await new Promise((r) => setImmediate(r));
    }
    const codes = await all;
    expect(codes.filter((c) => c === EXIT_CODES.BAD_INPUT)).toHaveLength(5);
    expect(reads).toBeGreaterThan(20);
    expect(fs.readdirSync(dir)).toEqual([TEXTFILE_NAME]); // no temporary left behind
    if (PROMTOOL) for (const t of distinct) expect(promtoolCheckMetrics(t)).toEqual({ code: 0, output: '' });
  });
});
