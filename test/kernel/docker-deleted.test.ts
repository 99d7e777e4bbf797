/**
 * A container removed with `docker rm` on a real dockerd 20.10 (devicemapper loop-lvm, ext4) in a QEMU guest
 * (test/kernel/guest/docker-deleted.sh), recovered offline on this host from the archived Docker root:
 * - dm.blkdiscard=false: `dminspect deleted --root` lists the container's thin device (Docker kept no record of
 *   it), and `export --deleted`, mounted read-only, shows the container's files byte for byte;
 * - direct-lvm (dockerd makes the LVM thin pool on a loop device; dm.blkdiscard=false, since Docker 20.10 leaves it
 *   on with dm.directlvm_device): the same, read through LVM from the disk image with --image;
 * - the default (dm.blkdiscard on, loop-lvm): Docker discarded the device before deleting it, so its own blocks
 *   are reported discarded (zeros) — never as intact evidence — and the export does not hold the file's bytes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../support/cli.js';
import { checkDockerDeleted } from '../support/docker-deleted.js';
import {
  describeRun,
  guestScript,
  guestTimeoutMs,
  markers,
  runInGuest,
  skipWithoutKernel,
  type GuestResult,
} from './harness.js';

describe.skipIf(skipWithoutKernel(['docker', 'thin']))(
  'containers removed with docker rm, recovered from stale pool metadata',
  () => {
    const runs: GuestResult[] = [];
    const tmp = tmpDir('dminspect-docker-deleted-');
    afterAll(async () => {
      for (const r of runs) await r.cleanup();
      fs.rmSync(tmp, { recursive: true, force: true });
    });

    it(
      'dm.blkdiscard=false and direct-lvm: listed and exported with its files; default loop-lvm: reported discarded',
      async () => {
        const marker = `deleted container ${process.pid}`;
        const r = await runInGuest({
          script: guestScript('docker-deleted.sh'),
          env: { OUT: '/scratch/out', MARKER: marker },
          // 84–238 s seen; each docker step is bounded (guest/lib.sh: exit 124 when the engine hangs, then a fresh guest)
          timeoutSec: 720,
          memMB: 2048,
        });
        runs.push(r);
        expect(r.code, describeRun(r)).toBe(0);
        const m = markers(r.stdout);
        expect(m.get('done')).toBeTruthy();
        const figures = await checkDockerDeleted(path.join(r.scratch, 'out'), m, marker, tmp);
        console.log(`[docker-deleted] guest wall ${r.wallSec}s (attempt ${r.attempts}); ${figures.join('; ')}`);
      },
      guestTimeoutMs(720),
    );
  },
);
