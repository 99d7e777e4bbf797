/**
 * The classic dm-thin walkthrough in a real kernel: pool on two sparse loop files, create_thin, mkfs,
 * write a file, suspend / create_snap / resume, mount the snapshot read-only, compare.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { describeRun, guestScript, markers, runInGuest, skipWithoutKernel, type GuestResult } from './harness.js';

describe.skipIf(skipWithoutKernel(['thin']))('dm-thin walkthrough in a real kernel', () => {
  const runs: GuestResult[] = [];
  afterAll(async () => {
    for (const r of runs) await r.cleanup();
  });

  it('snapshots an active thin device and the read-only snapshot has the same file', async () => {
    const marker = `dminspect walkthrough ${process.pid}`;
    const r = await runInGuest({
      script: guestScript('thin-walkthrough.sh'),
      env: { MARKER: marker },
      timeoutSec: 300,
    });
    runs.push(r);
    expect(r.code, describeRun(r)).toBe(0);
    const m = markers(r.stdout);
    const one = (k: string) => m.get(k)?.[0] ?? '';

    expect(one('targets')).toMatch(/thin-pool v1\.\d+\.\d+; thin v1\.\d+\.\d+;/);
    expect(one('origin')).toMatch(/^[0-9a-f]{64} /);
    expect(one('snap')).toBe(one('origin'));
    expect(one('snap').slice(65)).toBe(marker);
    expect(m.has('cmp')).toBe(true);
    // copy-on-write: the origin changed after the snapshot, the snapshot did not
    expect(one('origin-after')).toBe('changed after the snapshot');
    expect(one('snap-after')).toBe(marker);
    // 1 GiB pool of 64 KiB blocks on loop devices, snapshot = thin dev 1, read-only
    expect(one('table-pool')).toMatch(/^0 2097152 thin-pool \d+:\d+ \d+:\d+ 128 1024 1 skip_block_zeroing$/);
    expect(one('status-pool')).toMatch(/^0 2097152 thin-pool \d+ \d+\/\d+ \d+\/16384 - rw /);
    expect(one('table-snap')).toMatch(/^0 524288 thin \d+:\d+ 1$/);
    expect(one('info-snap')).toMatch(/^snap:L-{2}r$/);
    // thin_ls (DEV MAPPED EXCLUSIVE SHARED) from a reserved metadata snapshot: the two devices share blocks
    const devs = one('thin_ls')
      .split(';')
      .filter(Boolean)
      .map((l) => l.trim().split(/\s+/).map(Number));
    expect(devs.map((d) => d[0])).toEqual([0, 1]);
    for (const [, mapped, excl, shared] of devs) {
      expect(shared).toBeGreaterThan(0);
      expect(mapped).toBe((excl ?? 0) + (shared ?? 0));
    }
    expect(devs[0]?.[3]).toBe(devs[1]?.[3]);
    expect(one('node')).toMatch(/^v20\./);
    expect(m.has('done')).toBe(true);
  });
});
