/**
 * Issue 14 on a real kernel: the single-file binary (release/dminspect-linux-x64) does a live `mount` and `release`
 * (part A of guest/live-forensics.sh: the stopped xfs capture, `--activate-pool`) with every system call added
 * after Linux 3.10 answering ENOSYS (test/binary/linux310.c; the filter carries over to dmsetup, mount and the
 * other tools it runs). The guest's kernel is Debian's 6.1; the CentOS 7 userspace is test/binary's job.
 * Then `pool` on a live pool with the binary (guest/live-pool.sh, section B): the held read runs in a worker thread
 * started on the binary's own entry (pool-source/held-read.ts), so SIGTERM in the middle of it releases the hold at once.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEngine } from './engine.js';
import {
  CAPTURES_DIR,
  describeRun,
  guestScript,
  guestTimeoutMs,
  markers,
  PROJECT_ROOT,
  runInGuest,
  skipWithoutKernel,
  type GuestResult,
} from './harness.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe.skipIf(skipWithoutKernel(['thin', 'xfs']))(
  'the single-file binary: live mount and release on a real kernel, post-3.10 system calls refused',
  () => {
    const runs: GuestResult[] = [];
    let work = '';
    let launcher = '';
    beforeAll(() => {
      execFileSync(process.execPath, [path.join(PROJECT_ROOT, 'scripts/build-binary.js')], {
        cwd: PROJECT_ROOT,
        stdio: 'pipe',
      });
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'dminspect-binary-live-'));
      launcher = path.join(work, 'linux310');
      execFileSync('gcc', ['-O2', '-o', launcher, path.join(PROJECT_ROOT, 'test/binary/linux310.c'), '-lseccomp'], {
        stdio: 'pipe',
      });
    }, 300_000);
    afterAll(async () => {
      for (const r of runs) await r.cleanup();
      if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    it(
      'xfs capture, one container: mount --activate-pool, read, release with the binary; nothing written, nothing left',
      async () => {
        const dir = path.join(CAPTURES_DIR, 'xfs');
        const engine = readEngine(path.join(dir, 'engine.json'));
        // one live mount and release: the container that ran and wrote its file
        const c = engine.containers.find((x) => x.name === 'dm-writer') ?? engine.containers[0]!;
        const r = await runInGuest({
          script: guestScript('live-forensics.sh'),
          env: {
            CAPTURE: dir,
            PROJECT: PROJECT_ROOT,
            WRONG_FS: 'ext4',
            DMI_BIN: path.join(PROJECT_ROOT, 'release/dminspect-linux-x64'),
            DMI_WRAP: launcher,
            ONLY_A: '1',
            ONLY_NAME: c.name,
          },
          timeoutSec: 900,
        });
        runs.push(r);
        expect(r.code, describeRun(r)).toBe(0);
        const m = markers(r.stdout);
        const one = (k: string) => m.get(k)?.[0] ?? '';
        const by = (k: string) =>
          new Map((m.get(k) ?? []).map((l) => [l.split(' ')[0] ?? '', l.split(' ').slice(1).join(' ')]));
        expect(m.has('done')).toBe(true);
        const before = one('A-before');
        expect(before).toMatch(/^ids=[\d,]+ txn=\d+$/);
        expect([...by('A-file').keys()]).toEqual([c.name]);
        expect(by('A-file').get(c.name), "the file the container wrote, read through the binary's mount").toBe(
          b64(c.file.content),
        );
        expect(by('A-rootfs').get(c.name)).toBe(`/mnt/ev-${c.name}/rootfs`);
        expect(by('A-opts').get(c.name)).toMatch(/^xfs;ro,.*norecovery/);
        expect(by('A-left').get(c.name), 'release left nothing').toBe(
          'dm=0 loops=0 mounts=0 state=0 pooldev=0 mntdir=no',
        );
        expect(by('A-release-again').get(c.name)).toBe('ok');
        expect(by('A-origin').get(c.name), 'origin device unchanged').toBe(c.device.sha256);
        expect([...by('A-origin').keys()]).toEqual([c.name]);
        expect(one('A-after'), 'same thin ids and transaction id as before').toBe(before);
        expect(one('A-meta-after'), 'the metadata file is not written').toBe(one('A-meta-before'));
      },
      guestTimeoutMs(900),
    );

    it(
      'live pool audit with the binary: the same report as Node; its held read runs in a worker thread, so SIGTERM mid-read releases the hold at once',
      async () => {
        const r = await runInGuest({
          script: guestScript('live-pool.sh'),
          env: {
            PROJECT: PROJECT_ROOT,
            DMI_BIN: path.join(PROJECT_ROOT, 'release/dminspect-linux-x64'),
            DMI_WRAP: launcher,
          },
          timeoutSec: 600,
        });
        runs.push(r);
        expect(r.code, describeRun(r)).toBe(0);
        const m = markers(r.stdout);
        const one = (k: string) => m.get(k)?.[0] ?? '';
        expect(m.has('done'), describeRun(r)).toBe(true);
        const json = (f: string) =>
          // every reserve takes a new block for the held root: the only figure that differs between two runs
          JSON.parse(fs.readFileSync(path.join(r.scratch, 'b', f), 'utf8'), (k, v) =>
            ['startedAt', 'heldRoot', 'heldMetadataRoot'].includes(k) ? undefined : v,
          );
        const bin = json('binary.json');
        const raw = JSON.parse(fs.readFileSync(path.join(r.scratch, 'b', 'binary.json'), 'utf8'));
        expect(raw.live.heldRoot).toBe(raw.live.statusWhileHeld.heldMetadataRoot);
        expect(bin.live).toMatchObject({ reservedByDminspect: true });
        expect(bin.devices.length).toBeGreaterThanOrEqual(4);
        expect(bin, 'the binary reads the live pool as Node does').toEqual(json('node.json'));
        expect(one('B-held-after')).toBe('- holds=0');
        expect(one('B-during'), 'the binary held a snapshot').toMatch(/^\d+$/);
        console.warn(`[binary-live] VM wall ${r.wallSec}s; SIGTERM mid-read: ${one('B-term')}`);
        const term = /^rc=(\d+) ms=(\d+) held=(\S+) holds=(\d+) stderr-lines=(\d+)$/.exec(one('B-term'));
        expect(term, one('B-term')).not.toBeNull();
        const [, rc, ms, held, holds, lines] = term!;
        expect(rc, 'SIGTERM: exit 128+15, not the read finishing').toBe('143');
        expect(Number(ms), 'the hold released without waiting for the read').toBeLessThan(30_000);
        expect([held, holds], 'no hold left').toEqual(['-', '0']);
        expect(lines, 'a signal exit is silent (as under Node): no error, no stack trace').toBe('0');
      },
      guestTimeoutMs(600),
    );
  },
);
