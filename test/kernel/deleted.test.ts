/**
 * Recovering a deleted thin device from a pool a real kernel wrote (QEMU guest, test/kernel/guest/deleted-raw.sh):
 * thin 1 gets an ext4 file system and a file over several commits, the kernel's sha256 of the device is taken,
 * `dmsetup message pool 0 "delete 1"`, the pool is torn down. Offline on this host, `dminspect deleted` finds it
 * in the stale metadata and `export --deleted` gives the kernel's sha256 (and the file). Then the pool is loaded
 * again and a new device writes into freed blocks: exactly those are reported reused and left as holes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../support/cli.js';
import { checkDeletedRaw } from '../support/deleted-raw.js';
import { describeRun, guestScript, markers, runInGuest, skipWithoutKernel, type GuestResult } from './harness.js';

describe.skipIf(skipWithoutKernel(['thin']))('deleted thin device recovered from a kernel-written pool', () => {
  const runs: GuestResult[] = [];
  const tmp = tmpDir('dminspect-deleted-vm-');
  afterAll(async () => {
    for (const r of runs) await r.cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('delete, recover offline: sha256 equal; a new device reuses freed blocks: reported reused', async () => {
    const r = await runInGuest({
      script: guestScript('deleted-raw.sh'),
      env: { OUT: '/scratch/out', MARKER: `deleted marker ${process.pid}` },
      timeoutSec: 400,
      memMB: 1024,
    });
    runs.push(r);
    expect(r.code, describeRun(r)).toBe(0);
    const m = markers(r.stdout);
    expect(m.get('done')).toBeTruthy();
    // the kernel: 237-ish blocks freed by the delete, thin 2 alone left
    expect(m.get('thin_ls-a')?.[0]).toMatch(/^2 \d+\s*$/);
    const f = await checkDeletedRaw(path.join(r.scratch, 'out'), m, tmp);
    expect(f.exportSha256).toBe(m.get('sha256-1')?.[0]);
    console.log(
      `[deleted] guest wall ${r.wallSec}s; ${f.versions} versions, newest maps ${f.newestMapped} blocks, ${f.reusedAfter} reused after the new device`,
    );
  });
});
