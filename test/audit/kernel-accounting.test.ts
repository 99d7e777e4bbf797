import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { poolAudit } from '../../src/audit/pool.js';
import { DockerRoot } from '../../src/docker/root.js';
import { kernelMetadataAccounting, metadataReserve, openPool } from '../../src/thin/index.js';
import { cliJson, SAMPLE } from '../support/cli.js';
import { hasThinTools } from '../thin/helpers.js';

const SAMPLE_META = path.join(SAMPLE, 'devicemapper/devicemapper/metadata');

describe('metadata space as the kernel counts it (Linux >= 4.20 reserve)', () => {
  it('a real Docker 20.10 loop-lvm pool: 43 blocks allocated of 16384 is what dmsetup status shows as 1681 used', () => {
    // Measured on a real dockerd 20.10 pool (issue 12): dmsetup status / docker info said 1681/16384, the space map 43.
    expect(kernelMetadataAccounting(16384, 43, 'reserve')).toEqual({
      totalBlocks: 16384,
      allocatedBlocks: 43,
      reserveBlocks: 1638,
      usedBlocks: 1681,
      rule: 'reserve',
    });
    expect(kernelMetadataAccounting(16384, 43, 'none').usedBlocks).toBe(43);
  });

  it('the reserve is min(total / 10, 4096); free space below it counts as none left', () => {
    expect(metadataReserve(1024, 'reserve')).toBe(102);
    expect(metadataReserve(40960, 'reserve')).toBe(4096);
    expect(metadataReserve(4_000_000, 'reserve')).toBe(4096);
    expect(metadataReserve(4_000_000, 'none')).toBe(0);
    // 950 allocated of 1000: 50 free < 100 reserved → the kernel reports the device full
    expect(kernelMetadataAccounting(1000, 950, 'reserve').usedBlocks).toBe(1000);
    expect(kernelMetadataAccounting(1000, 900, 'reserve').usedBlocks).toBe(1000);
    expect(kernelMetadataAccounting(1000, 899, 'reserve').usedBlocks).toBe(999);
  });
});

describe.skipIf(!hasThinTools)('pool: the kernel’s metadata accounting on real metadata', () => {
  it('allocated is the on-disk space map; used = allocated + reserve; --kernel-rule none drops the reserve', async () => {
    const pool = openPool(SAMPLE_META);
    const allocated = pool.spaceMaps().metadata.used;
    const total = pool.metadataNrBlocks;
    pool.close();
    const r = await cliJson('pool', '--root', SAMPLE);
    expect(r.metadata).toMatchObject({
      totalBlocks: total,
      allocatedBlocks: allocated,
      reserveBlocks: Math.min(4096, Math.floor(total / 10)),
      kernelRule: 'reserve',
    });
    expect(r.metadata.usedBlocks).toBe(allocated + r.metadata.reserveBlocks);
    expect(r.metadata.usedBytes).toBe(r.metadata.usedBlocks * 4096);
    const none = await cliJson('pool', '--root', SAMPLE, '--kernel-rule', 'none');
    expect(none.metadata).toMatchObject({ usedBlocks: allocated, reserveBlocks: 0, kernelRule: 'none' });
  });

  it('metadata-space-low fires on the kernel’s figure: the reserve alone tips it', () => {
    const root = DockerRoot.open(SAMPLE);
    const r = poolAudit(root, {});
    const free = r.metadata.freeBlocks / r.metadata.totalBlocks;
    const freeOnDisk = (r.metadata.totalBlocks - r.metadata.allocatedBlocks) / r.metadata.totalBlocks;
    // a threshold between the kernel's free fraction and the on-disk one
    const between = (free + freeOnDisk) / 2;
    const kernel = poolAudit(root, { minFreeFraction: between });
    expect(kernel.findings.find((f) => f.kind === 'metadata-space-low')).toMatchObject({
      severity: 'critical',
      evidence: { reserveBlocks: r.metadata.reserveBlocks, kernelRule: 'reserve' },
    });
    const old = poolAudit(root, { minFreeFraction: between, kernelRule: 'none' });
    expect(old.findings.map((f) => f.kind)).not.toContain('metadata-space-low');
  });
});
