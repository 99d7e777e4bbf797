/**
 * A big-endian host (s390x, where RHEL 7 and 8 also run). The thin format is little-endian: the readers decode it
 * with readUInt32LE, but the usage walk (thin/usage-kernel.ts) and the bitmap counts (thin/space-map.ts) read blocks
 * through typed-array views, which read the host's byte order. Runs the built CLI (bin/dminspect.js) with Node for
 * s390x under qemu-user on real metadata: the sample's pool, against this host's output, and a pool written by
 * thin_restore, against thin_ls. Before the walk decoded its words on such a host, every node's checksum read wrong
 * there ("btree node 11 (mapping tree of device 1): checksum or block number mismatch" on the sample): evidence
 * reported corrupt that is not.
 * Needs qemu-user (qemu-s390x), the s390x C and C++ libraries and the npm registry's node-linux-s390x
 * (test/support/foreign-node.ts: 20.11.0, the newest s390x Node there, older than package.json's engines, which this
 * test does not need: no command run here starts a thread). On a machine without them the tests skip; under CI they
 * fail (test/support/tools.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, SAMPLE } from '../support/cli.js';
import { foreignCli, foreignNode, foreignNodeMissing, hostCli, S390X, type Run } from '../support/foreign-node.js';
import { skipReason } from '../support/tools.js';
import { hasThinTools, removeTmp, restore, thinLs, type MappingSpec } from './helpers.js';

const skip = skipReason(
  hasThinTools ? foreignNodeMissing(S390X) : 'thin_restore (thin-provisioning-tools) is not installed',
);

const be = (...args: string[]): Run => foreignCli(S390X, ...args);

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
    expect(foreignNode(S390X, '-p', "process.arch + ' ' + require('os').endianness()").stdout.trim()).toBe('s390x BE');
    // bin/bundle.js looks for this architecture's caches: none made here (the build made this host's)
    const bundle = path.join(REPO, 'dist/bundle');
    expect(fs.readdirSync(bundle).filter((f) => f.includes('.s390x.'))).toEqual([]);
    expect(fs.readdirSync(bundle).filter((f) => f.includes(`.${process.arch}.`) && f.endsWith('.cache'))).toHaveLength(
      2,
    );
    const text = be('container', 'web', '--no-live', '--root', SAMPLE);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toBe(hostCli('container', 'web', '--no-live', '--root', SAMPLE).stdout);
  });

  it('the sample: pool, devices, container and deleted give the JSON this host gives, usage included', () => {
    const got: unknown[] = [];
    for (const args of [
      ['container', 'web', '--json', '--no-live', '--root', SAMPLE],
      ['pool', '--json', '--no-live', '--root', SAMPLE],
      ['devices', '--json', '--no-live', '--root', SAMPLE],
      ['deleted', '--json', '--root', SAMPLE],
    ]) {
      got.push(json(be(...args)));
      expect(got.at(-1), args.join(' ')).toEqual(json(hostCli(...args)));
    }
    // the usage walk ran (and was not left out): the container's exclusive and shared blocks
    const c = got[0] as { usage: { exclusiveBlocks: number; sharedBlocks: number } | null; problems: string[] };
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
