import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildV2Root, poolXmlFor, sha, writePoolMetadata } from '../../scripts/docker-root-builder.js';
import { cli, cliJson, SAMPLE, tmpDir, treeDigest, thinLsRows } from '../support/cli.js';
import { hasThinTools, patchBlock, SKIP_MESSAGE } from '../thin/helpers.js';

const SAMPLE_META = path.join(SAMPLE, 'devicemapper/devicemapper/metadata');

function thinDumpSuperblock(meta: string): Record<string, string> {
  const xml = execFileSync('thin_dump', ['--skip-mappings', meta], { encoding: 'utf8' });
  const m = /<superblock ([^>]*)>/.exec(xml)!;
  return Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
}

const SPEC = {
  images: [{ name: 'busybox:latest', layers: ['b'] }],
  containers: [
    { name: 'web', image: 'busybox:latest', state: 'running' },
    { name: 'db', image: 'busybox:latest', state: 'exited' },
  ],
};

/** A root with a real thin_restore pool; `pool` tweaks the pool, `mutate` the Docker files. */
function rootWithPool(pool: Parameters<typeof poolXmlFor>[1] = {}, mutate?: (dir: string, built: any) => void): string {
  const dir = tmpDir();
  const built = buildV2Root(dir, SPEC);
  writePoolMetadata(dir, poolXmlFor(built, pool));
  mutate?.(dir, built);
  return dir;
}

/** A device's fields in `pool --json` (README). */
const DEVICE_FIELDS = [
  'deviceId',
  'role',
  'owner',
  'hash',
  'containerId',
  'containerName',
  'mappedBlocks',
  'exclusiveBlocks',
  'sharedBlocks',
  'mappedBytes',
  'exclusiveBytes',
  'sharedBytes',
  'transactionId',
  'creationTime',
  'snapTime',
  'size',
].sort();

const kinds = (r: { findings: { kind: string }[] }) => r.findings.map((f) => f.kind);

describe.skipIf(!hasThinTools)('pool on thin_restore metadata', () => {
  if (!hasThinTools) console.warn(SKIP_MESSAGE);

  it('every device equals thin_ls (mapped, exclusive, shared, transaction, creation and snap time)', async () => {
    const r = await cliJson('pool', '--root', SAMPLE, '--sort', 'id');
    const ls = thinLsRows(SAMPLE_META);
    expect(r.devices.map((d: { deviceId: number }) => d.deviceId)).toEqual([...ls.keys()].sort((a, b) => a - b));
    for (const d of r.devices) {
      expect(
        [d.mappedBlocks, d.exclusiveBlocks, d.sharedBlocks, d.transactionId, d.creationTime, d.snapTime],
        `device ${d.deviceId}`,
      ).toEqual(ls.get(d.deviceId));
      expect(d.exclusiveBytes).toBe(d.exclusiveBlocks * 65536);
      // The documented fields (README, pool --json), no more, no fewer (audit/pool.ts writes them out one by one).
      expect(Object.keys(d).sort(), `device ${d.deviceId}`).toEqual(DEVICE_FIELDS);
    }
  });

  it('pool facts equal thin_dump’s superblock and the space maps', async () => {
    const r = await cliJson('pool', '--root', SAMPLE);
    const sb = thinDumpSuperblock(SAMPLE_META);
    expect(r.transactionId).toBe(Number(sb.transaction));
    expect(r.time).toBe(Number(sb.time));
    expect(r.dataBlockSectors).toBe(Number(sb.data_block_size));
    expect(r.data.totalBlocks).toBe(Number(sb.nr_data_blocks));
    expect(r.metadata.totalBlocks).toBe(fs.statSync(SAMPLE_META).size / 4096);
    const distinctData = new Set<number>();
    const xml = execFileSync('thin_dump', [SAMPLE_META], { encoding: 'utf8' });
    for (const m of xml.matchAll(/data_begin="(\d+)" length="(\d+)"/g))
      for (let i = 0; i < Number(m[2]); i++) distinctData.add(Number(m[1]) + i);
    for (const m of xml.matchAll(/data_block="(\d+)"/g)) distinctData.add(Number(m[1]));
    expect(r.data.usedBlocks).toBe(distinctData.size);
    expect(r.data.freeBlocks).toBe(r.data.totalBlocks - r.data.usedBlocks);
    expect(r.needsCheck).toBe(false);
    expect(r.heldMetadataSnapshot).toBeNull();
  });

  it('names each device as Docker knows it', async () => {
    const r = await cliJson('pool', '--root', SAMPLE);
    const by = new Map(r.devices.map((d: { deviceId: number }) => [d.deviceId, d]));
    expect(by.get(1)).toMatchObject({ role: 'base', owner: 'base device' });
    const web = r.devices.find((d: { hash: string }) => d.hash === sha('mount:web'));
    expect(web).toMatchObject({ role: 'container', containerName: 'web', owner: 'container web' });
    expect(by.get(40)).toMatchObject({ role: 'orphan', hash: null });
  });

  it('the sample’s findings: orphan with its exclusive bytes, record without device, deleted and leaked records, temp file', async () => {
    const r = await cliJson('pool', '--root', SAMPLE);
    const ls = thinLsRows(SAMPLE_META);
    const orphan = r.findings.find((f: { kind: string }) => f.kind === 'orphan-device');
    expect(orphan.evidence).toMatchObject({ deviceId: 40, exclusiveBytes: ls.get(40)![1]! * 65536 });
    expect(orphan.severity).toBe('warning');
    expect(orphan.remedy).toMatch(/dmsetup message .* 0 'delete 40'/);
    const missing = r.findings.find((f: { kind: string }) => f.kind === 'record-without-device');
    expect(missing.evidence.deviceId).toBe(15);
    expect(missing.evidence.file).toBe(path.join(SAMPLE, 'devicemapper/metadata', sha('extra:vanished')));
    expect(r.findings.find((f: { kind: string }) => f.kind === 'deleted-record').evidence.deviceId).toBe(13);
    expect(
      r.findings
        .filter((f: { kind: string }) => f.kind === 'unreferenced-record')
        .map((f: any) => f.evidence.deviceId)
        .sort(),
    ).toEqual([13, 14]);
    expect(kinds(r)).toContain('stale-tmp-file');
    expect(kinds(r)).toContain('next-device-id-behind');
    expect(kinds(r)).not.toContain('open-transaction');
    expect(
      r.findings.every(
        (f: any) => f.message && f.remedy && f.evidence && ['critical', 'warning', 'info'].includes(f.severity),
      ),
    ).toBe(true);
  });

  it('--sort and --top; the human view ranks space holders first', async () => {
    const r = await cliJson('pool', '--root', SAMPLE, '--sort', 'exclusive', '--top', '3');
    expect(r.devices).toHaveLength(3);
    expect(r.devices[0].deviceId).toBe(40);
    expect(r.devices[0].exclusiveBlocks).toBeGreaterThanOrEqual(r.devices[1].exclusiveBlocks);
    const t = await cli('pool', '--root', SAMPLE);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^data: +10\.4 MiB of 1 GiB used/m);
    expect(t.stdout).toMatch(/^40 +orphan \(no Docker record\) +7 MiB +3 MiB +4 MiB/m);
    expect(t.stdout).toMatch(/WARNING +thin device 40 is in the pool but no Docker record names it/);
    expect((await cli('pool', '--root', SAMPLE, '--sort', 'bogus')).code).toBe(2);
    expect((await cli('pool', '--root', SAMPLE, '--top', 'x')).code).toBe(2);
  });

  it('--metadata alone (no Docker root) reads the pool without names', async () => {
    const r = await cliJson('pool', '--metadata', SAMPLE_META);
    expect(r.root).toBeNull();
    expect(r.devices.every((d: { role: string }) => d.role === 'unknown')).toBe(true);
    expect(r.findings).toEqual([]);
  });

  it('an open transaction, record transaction ids ahead of the pool', async () => {
    const dir = rootWithPool({ transaction: 3 });
    const r = await cliJson('pool', '--root', dir);
    expect(kinds(r)).toContain('open-transaction');
    const open = r.findings.find((f: { kind: string }) => f.kind === 'open-transaction');
    expect(open.evidence.poolTransactionId).toBe(3);
    expect(r.findings.filter((f: { kind: string }) => f.kind === 'record-transaction-ahead').length).toBeGreaterThan(0);
  });

  it('needs_check is critical', async () => {
    const dir = rootWithPool({}, (d) =>
      patchBlock(path.join(d, 'devicemapper/devicemapper/metadata'), 0, 'superblock', (b) => b.writeUInt32LE(1, 4)),
    );
    const r = await cliJson('pool', '--root', dir);
    expect(r.needsCheck).toBe(true);
    expect(r.findings[0]).toMatchObject({ kind: 'needs-check', severity: 'critical' });
  });

  it('data space under 10 % free is critical', async () => {
    const used = Math.max(
      ...[...poolXmlFor(buildV2Root(tmpDir(), SPEC), {}).matchAll(/data_begin="(\d+)" length="(\d+)"/g)].map(
        (m) => Number(m[1]) + Number(m[2]),
      ),
    );
    const r = await cliJson('pool', '--root', rootWithPool({ nrDataBlocks: used + 5 }));
    expect(r.findings[0]).toMatchObject({ kind: 'data-space-low', severity: 'critical' });
    expect(r.data.freeBlocks).toBeLessThan(8);
  });

  it('mnt/<hash> without a record', async () => {
    const dir = rootWithPool({}, (d) =>
      fs.mkdirSync(path.join(d, 'devicemapper/mnt', sha('gone')), { recursive: true }),
    );
    const r = await cliJson('pool', '--root', dir);
    expect(r.findings.find((f: { kind: string }) => f.kind === 'mnt-without-record').evidence.dir).toBe(
      path.join(dir, 'devicemapper/mnt', sha('gone')),
    );
  });

  it('no loop-lvm metadata: a clear error naming --metadata', async () => {
    const dir = tmpDir();
    buildV2Root(dir, SPEC);
    const r = await cli('pool', '--root', dir);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/no loop-lvm pool metadata .*--metadata/);
  });

  it('--metadata-snap with no held snapshot is an error; corrupt metadata is one line, exit 5', async () => {
    const r = await cli('pool', '--root', SAMPLE, '--metadata-snap');
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const dir = rootWithPool({}, (d) =>
      patchBlock(path.join(d, 'devicemapper/devicemapper/metadata'), 0, null, (b) => b.writeUInt32LE(0xdeadbeef, 32)),
    );
    const bad = await cli('pool', '--root', dir);
    expect(bad.code).toBe(5);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^dminspect: \/.*\/metadata: superblock: bad magic/);
  });

  it('container shows its usage; a corrupt pool is a problem in the report, not a failure', async () => {
    const c = await cliJson('container', 'web', '--root', SAMPLE);
    const ls = thinLsRows(SAMPLE_META).get(c.device.deviceId)!;
    expect([c.usage.mappedBlocks, c.usage.exclusiveBlocks, c.usage.sharedBlocks]).toEqual(ls.slice(0, 3));
    const dir = rootWithPool({}, (d) =>
      patchBlock(path.join(d, 'devicemapper/devicemapper/metadata'), 0, null, (b) => b.writeUInt32LE(0xdeadbeef, 32)),
    );
    const r = await cliJson('container', 'web', '--root', dir);
    expect(r.usage).toBeNull();
    expect(r.problems.join()).toMatch(/pool usage unavailable/);
  });

  it('devices: each record with its pool usage; a record whose device is gone is "not in pool"', async () => {
    const r = await cliJson('devices', '--root', SAMPLE);
    const ls = thinLsRows(SAMPLE_META);
    for (const d of r.devices) {
      const row = ls.get(d.deviceId);
      if (row) {
        expect(d.inPool).toBe(true);
        expect([d.usage.mappedBlocks, d.usage.exclusiveBlocks, d.usage.sharedBlocks], `device ${d.deviceId}`).toEqual(
          row.slice(0, 3),
        );
      } else {
        expect(d).toMatchObject({ deviceId: 15, inPool: false, usage: null });
      }
    }
    const t = await cli('devices', '--root', SAMPLE);
    expect(t.stdout).toMatch(/^15 .*not in pool/m);
  });

  it('reads nothing but reads: every file under the root is unchanged', async () => {
    const before = treeDigest(SAMPLE);
    await cli('pool', '--root', SAMPLE, '--json');
    await cli('container', 'web', '--root', SAMPLE);
    expect(treeDigest(SAMPLE)).toEqual(before);
  });
});
