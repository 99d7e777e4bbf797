/**
 * A big-endian host (s390x, where RHEL 7 and 8 also run). The thin format is little-endian: the readers decode it
 * with readUInt32LE, but the usage walk (thin/usage-kernel.ts) and the bitmap counts (thin/space-map.ts) read blocks
 * through typed-array views, which read the host's byte order. Runs the built CLI (bin/dminspect.js) with Node for
 * s390x under qemu-user on real metadata: the sample's pool, against this host's output, and a pool written by
 * thin_restore, against thin_ls. Before the walk decoded its words on such a host, every node's checksum read wrong
 * there ("btree node 11 (mapping tree of device 1): checksum or block number mismatch" on the sample): evidence
 * reported corrupt that is not.
 * Needs qemu-user (qemu-s390x), the s390x C and C++ libraries (libc6-s390x-cross, libstdc++6-s390x-cross: .ci/run
 * installs them) and the npm registry's node-linux-s390x, fetched once with `npm pack` into /tmp (20.11.0, the newest
 * s390x Node there: older than package.json's engines, which this test does not need: no command run here starts a
 * thread). On a machine without them the tests skip; under CI they fail (test/support/tools.ts).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, REPO, SAMPLE } from '../support/cli.js';
import { skipReason } from '../support/tools.js';
import { hasThinTools, removeTmp, restore, thinLs, type MappingSpec } from './helpers.js';

const NODE_PACKAGE = 'node-linux-s390x@20.11.0';
const NODE_DIR = '/tmp/dminspect-s390x-node';
const NODE = path.join(NODE_DIR, 'package', 'bin', 'node');
const SYSROOT = '/usr/s390x-linux-gnu';

/** Why the s390x Node cannot run here (null: it can), fetching it first if needed. */
function s390xNode(): string | null {
  if (spawnSync('qemu-s390x', ['--version']).status !== 0) return 'qemu-s390x (qemu-user) is not installed';
  if (
    !fs.existsSync(path.join(SYSROOT, 'lib', 'ld64.so.1')) ||
    !fs.existsSync(path.join(SYSROOT, 'lib', 'libstdc++.so.6'))
  )
    return `the s390x C and C++ libraries are not installed (${SYSROOT}: libc6-s390x-cross, libstdc++6-s390x-cross)`;
  if (!fs.existsSync(NODE)) {
    fs.mkdirSync(NODE_DIR, { recursive: true });
    const pack = spawnSync('npm', ['pack', NODE_PACKAGE, '--pack-destination', NODE_DIR, '--silent'], {
      encoding: 'utf8',
      cwd: NODE_DIR,
    });
    const tgz = pack.stdout.trim().split('\n').pop() ?? '';
    if (pack.status !== 0 || !tgz) return `npm pack ${NODE_PACKAGE} failed: ${pack.stderr.trim()}`;
    const untar = spawnSync('tar', ['xzf', path.join(NODE_DIR, tgz), '-C', NODE_DIR], { encoding: 'utf8' });
    if (untar.status !== 0) return `unpacking ${tgz} failed: ${untar.stderr.trim()}`;
  }
  return null;
}

const skip = skipReason(hasThinTools ? s390xNode() : 'thin_restore (thin-provisioning-tools) is not installed');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built CLI under Node for s390x. */
function be(...args: string[]): Run {
  const r = spawnSync('qemu-s390x', ['-L', SYSROOT, NODE, BIN, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The built CLI under this host's Node. */
function host(...args: string[]): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A command's JSON without its timing. */
function json(r: Run): unknown {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout, (k, v: unknown) => (k === 'elapsedMs' ? undefined : v));
}

describe.skipIf(skip !== null)(`a big-endian host (s390x Node under qemu-user)${skip ? `: ${skip}` : ''}`, () => {
  beforeAll(() => {
    if (!fs.existsSync(path.join(REPO, 'dist/bundle/main.cjs'))) throw new Error('run npm run build first');
  });
  afterAll(() => removeTmp());

  it('the Node is big-endian, and the x64 code cache is not handed to it (V8 took it and crashed)', () => {
    const r = spawnSync('qemu-s390x', ['-L', SYSROOT, NODE, '-p', "process.arch + ' ' + require('os').endianness()"], {
      encoding: 'utf8',
    });
    expect(r.stdout.trim()).toBe('s390x BE');
    // bin/bundle.js looks for this architecture's caches: none made here (the build made this host's)
    const bundle = path.join(REPO, 'dist/bundle');
    expect(fs.readdirSync(bundle).filter((f) => f.includes('.s390x.'))).toEqual([]);
    expect(fs.readdirSync(bundle).filter((f) => f.includes(`.${process.arch}.`) && f.endsWith('.cache'))).toHaveLength(
      2,
    );
    const text = be('container', 'web', '--no-live', '--root', SAMPLE);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toBe(host('container', 'web', '--no-live', '--root', SAMPLE).stdout);
  });

  it('the sample: pool, devices, container and deleted give the JSON this host gives, usage included', () => {
    for (const args of [
      ['pool', '--json', '--no-live', '--root', SAMPLE],
      ['devices', '--json', '--no-live', '--root', SAMPLE],
      ['container', 'web', '--json', '--no-live', '--root', SAMPLE],
      ['deleted', '--json', '--root', SAMPLE],
    ]) {
      const want = json(host(...args));
      expect(json(be(...args)), args.join(' ')).toEqual(want);
    }
    // the usage walk ran (and was not left out): the container's exclusive and shared blocks
    const c = json(be('container', 'web', '--json', '--no-live', '--root', SAMPLE)) as {
      usage: { exclusiveBlocks: number; sharedBlocks: number } | null;
      problems: string[];
    };
    expect(c.problems).toEqual([]);
    expect(c.usage).toMatchObject({ exclusiveBlocks: 3, sharedBlocks: 64 });
  });

  it('a pool written by thin_restore (blocks shared between devices, data blocks past 2^16 and 2^24): the counts thin_ls gives', () => {
    const dev = (id: number, mappings: MappingSpec[]) => ({ id, mappings });
    const runs = (v: number, d: number, n: number, step = 1): MappingSpec[] =>
      Array.from({ length: n }, (_, i) => ({ v: v + i, d: d + i * step }));
    const meta = restore(
      {
        nrDataBlocks: 1 << 25,
        devices: [
          dev(1, runs(0, 0, 600)),
          // shares 300 of device 1's blocks
          dev(2, [...runs(0, 300, 300), ...runs(5000, 70_000, 400, 3)]),
          dev(3, runs(10, (1 << 24) + 5, 500, 7)),
          // shares device 3's blocks past 2^24 and device 2's past 2^16
          dev(4, [...runs(0, (1 << 24) + 5, 50, 7), ...runs(100, 70_000, 20, 3)]),
          dev(7, runs(1 << 20, (1 << 25) - 1000, 1000)),
        ],
      },
      64 * 1024 * 1024,
    );
    const want = thinLs(meta);
    const got = json(be('pool', '--metadata', meta, '--json', '--no-live')) as {
      devices: { deviceId: number; mappedBlocks: number; exclusiveBlocks: number; sharedBlocks: number }[];
    };
    expect(
      got.devices
        .map((d) => [d.deviceId, d.mappedBlocks, d.exclusiveBlocks, d.sharedBlocks])
        .sort((a, b) => a[0]! - b[0]!),
    ).toEqual([...want.values()].map((r) => [r.dev, r.mapped, r.exclusive, r.shared]).sort((a, b) => a[0]! - b[0]!));
    // the pool is what the test says: some blocks shared, some exclusive
    expect([...want.values()].some((r) => r.shared > 0 && r.exclusive > 0)).toBe(true);
  });
});
