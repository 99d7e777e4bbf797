/**
 * Issue 3 on a real kernel: dminspect snapshot / mount / release on committed captures of a real dockerd,
 * stopped (--activate-pool) and running (a real dockerd 20.10 in the guest, cross-checked through dockerode).
 * The origin devices are never written, the pool's transaction id never moves, and nothing is left behind,
 * not even after a mount that fails halfway.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readEngine } from './engine.js';
import {
  CAPTURES_DIR,
  describeRun,
  guestScript,
  markers,
  PROJECT_ROOT,
  runInGuest,
  skipWithoutKernel,
  type GuestResult,
} from './harness.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe.skipIf(skipWithoutKernel(['docker', 'thin', 'xfs']))(
  'live forensics on a real kernel and a real dockerd',
  () => {
    const runs: GuestResult[] = [];
    beforeAll(async () => {
      await execa('npm', ['run', '--silent', 'build'], { cwd: PROJECT_ROOT });
    }, 120_000);
    afterAll(async () => {
      for (const r of runs) await r.cleanup();
    });

    it.each([
      ['xfs', 'ext4'],
      ['ext4', 'xfs'],
    ])('%s capture: mount, read, release; nothing written, nothing left', async (fsType, wrongFs) => {
      const dir = path.join(CAPTURES_DIR, fsType);
      const engine = readEngine(path.join(dir, 'engine.json'));
      const r = await runInGuest({
        script: guestScript('live-forensics.sh'),
        env: { CAPTURE: dir, PROJECT: PROJECT_ROOT, WRONG_FS: wrongFs },
        timeoutSec: 900,
      });
      runs.push(r);
      expect(r.code, describeRun(r)).toBe(0);
      const m = markers(r.stdout);
      const one = (k: string) => m.get(k)?.[0] ?? '';
      const by = (k: string) =>
        new Map((m.get(k) ?? []).map((l) => [l.split(' ')[0] ?? '', l.split(' ').slice(1).join(' ')]));
      expect(one('done')).toBe('');
      expect(m.has('done')).toBe(true);

      // A: stopped root, --activate-pool
      const before = one('A-before');
      expect(before).toMatch(/^ids=[\d,]+ txn=\d+$/);
      const files = by('A-file');
      const opts = by('A-opts');
      const left = by('A-left');
      const origin = by('A-origin');
      for (const c of engine.containers) {
        expect(files.get(c.name), c.name).toBe(b64(c.file.content));
        expect(by('A-rootfs').get(c.name)).toBe(`/mnt/ev-${c.name}/rootfs`);
        expect(opts.get(c.name), c.name).toMatch(fsType === 'xfs' ? /^xfs;ro,.*norecovery/ : /^ext4;ro,/);
        expect(by('A-snapattr').get(c.name), c.name).toMatch(/^L-?-?r/); // live table, read-only device (the origin itself, in a read-only pool)
        expect(left.get(c.name), c.name).toBe('dm=0 loops=0 mounts=0 state=0 pooldev=0 mntdir=no');
        expect(by('A-release-again').get(c.name)).toBe('ok');
        expect(origin.get(c.name), `${c.name}: origin device unchanged`).toBe(c.device.sha256);
      }
      expect(one('A-after'), 'same thin ids and transaction id as before').toBe(before);
      expect(one('A-meta-after'), 'a read-only pool: the metadata file is not written at all').toBe(
        one('A-meta-before'),
      );

      // B: a running dockerd
      const [version, nameSource, poolName, deviceName, findings] = one('B-daemon').split(' ');
      expect(version).toMatch(/^20\.10/);
      expect(nameSource).toBe('daemon');
      expect(poolName).toBe(one('B-pool'));
      expect(deviceName).toMatch(new RegExp(`^${poolName!.replace(/-pool$/, '')}-[0-9a-f]{64}$`));
      expect(findings, 'the daemon agrees with the records').toBe('0');
      expect(one('B-origin-active')).toMatch(/^L/); // the running container's device is active: the suspend path
      expect(one('B-plan')).toBe('1 1 1');
      const running = engine.containers.find((c) => c.name === 'dm-running')!;
      const writer = engine.containers.find((c) => c.name === 'dm-writer')!;
      expect(by('B-file').get('dm-running')).toBe(b64(running.file.content));
      expect(by('B-file').get('dm-writer')).toBe(b64(writer.file.content));
      expect(one('B-snapshots')).toBe('1');
      expect(one('B-still-running')).toBe(`true ${b64(running.file.content)}`);
      const [sum0, sum1] = one('B-origin-sum').split(' ');
      expect(sum1, 'the running origin device is unchanged').toBe(sum0);
      const [txn0, txn1] = one('B-txn').split(' ');
      expect(txn1, 'pool transaction id unchanged').toBe(txn0);
      expect(one('B-left')).toBe('dm=0 loops=2 mounts=0 state=0'); // dockerd's own two loop devices
      const [rc, err] = one('B-fail').split(' ');
      expect(Number((rc ?? '').replace('rc=', ''))).toBeGreaterThan(0);
      expect(
        Buffer.from(err ?? '', 'base64')
          .toString()
          .trim(),
      ).toMatch(
        /^dminspect: mount read-only .* failed: mount -t \w+ -o \S+ \/dev\/mapper\/dminspect-\S+ \/mnt\/ev-fail: mount: .*wrong fs type.*; everything before it was undone$/,
      );
      expect(one('B-fail-left')).toBe('dm=0 loops=2 mounts=0 state=0 mntdir=no');
      expect(one('B-txn-end')).toBe(txn0);
      expect(one('B-after'), 'after a clean stop the pool holds the same devices and transaction id').toBe(before);
    });
  },
);
