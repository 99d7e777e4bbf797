/**
 * `dminspect deleted` / `export --deleted` on the committed kernel-written capture fixtures/captures/deleted-raw/
 * (made in a QEMU guest by test/kernel/guest/deleted-raw.sh; re-made by make-capture.sh there): thin device 1 was
 * deleted by the kernel; its newest stale version exports with the sha256 the kernel read before the delete, and
 * after a new device took some freed blocks, exactly those are reported reused. The same checks run on a fresh
 * guest in test/kernel/deleted.test.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { cli, hashFile, REPO, tmpDir } from '../support/cli.js';
import { checkDeletedRaw, parseMarkers } from '../support/deleted-raw.js';

const CAPTURE = path.join(REPO, 'fixtures', 'captures', 'deleted-raw');

describe('deleted devices on a kernel-written capture', () => {
  const tmp = tmpDir('dminspect-deleted-');
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('lists thin 1 (not the live 2 / 3), exports its newest version byte-exact, reports reused blocks', async () => {
    const markers = parseMarkers(fs.readFileSync(path.join(CAPTURE, 'markers.txt'), 'utf8'));
    const f = await checkDeletedRaw(CAPTURE, markers, tmp);
    expect(f.exportSha256).toBe(markers.get('sha256-1')?.[0]);
  }, 60_000);

  const canMount = process.getuid?.() === 0 && spawnSync('losetup', ['--version'], { stdio: 'ignore' }).status === 0;
  it.skipIf(!canMount)(
    'mount --offline --deleted mounts the newest version read-only; release undoes it',
    async () => {
      const dir = path.join(tmp, 'mount');
      fs.mkdirSync(dir);
      execFileSync('tar', ['--sparse', '-xzf', path.join(CAPTURE, 'a.tar.gz'), '-C', dir]);
      const meta = path.join(dir, 'metadata');
      const data = path.join(dir, 'data');
      const evidence = [hashFile(meta), hashFile(data)];
      const mnt = path.join(dir, 'mnt');
      const state = path.join(dir, 'state');
      const work = path.join(dir, 'work');
      const markers = parseMarkers(fs.readFileSync(path.join(CAPTURE, 'markers.txt'), 'utf8'));
      const m = await cli(
        'mount',
        '--offline',
        '--deleted',
        '1',
        mnt,
        '--metadata',
        meta,
        '--data',
        data,
        '--size',
        markers.get('size-1')![0]!,
        '--state-dir',
        state,
        '--work-dir',
        work,
        '--json',
      );
      expect(m.code, m.stderr).toBe(0);
      const j = JSON.parse(m.stdout);
      expect(j.export.sha256).toBe(markers.get('sha256-1')![0]);
      expect(j.snapshot).toMatchObject({
        mode: 'offline',
        container: null,
        origin: { deviceId: 1 },
        fsType: 'ext4',
        mountPoint: mnt,
      });
      try {
        expect(fs.readFileSync(path.join(mnt, 'evidence.txt'), 'utf8')).toMatch(/\(second line\)\n$/);
        expect(() => fs.writeFileSync(path.join(mnt, 'x'), 'x')).toThrow(); // read-only
      } finally {
        const r = await cli('release', mnt, '--state-dir', state);
        expect(r.code, r.stderr).toBe(0);
      }
      expect(fs.existsSync(mnt)).toBe(false);
      expect(fs.readdirSync(work)).toEqual([]);
      expect([hashFile(meta), hashFile(data)]).toEqual(evidence);
    },
    60_000,
  );

  it('bad input is one line and a non-zero exit, never a partial image', async () => {
    const dir = path.join(tmp, 'errors');
    fs.mkdirSync(dir);
    execFileSync('tar', ['--sparse', '-xzf', path.join(CAPTURE, 'a.tar.gz'), '-C', dir]);
    const meta = path.join(dir, 'metadata');
    const data = path.join(dir, 'data');
    const out = path.join(dir, 'out.img');
    const base = ['export', '--deleted', '--metadata', meta, '--data', data];
    const cases: [string[], number, RegExp][] = [
      [[...base, out], 2, /needs --device-id/],
      [[...base, '--device-id', '1', '--version', '0', out], 2, /--version "0"/],
      [[...base, '--device-id', '1', '--version', '99', out], 3, /has versions 1\.\.\d+, not 99/],
      [[...base, '--device-id', '5', out], 3, /no deleted thin device 5/],
      [['deleted', '--metadata', path.join(CAPTURE, 'markers.txt')], 5, /too small for a thin-pool superblock/],
    ];
    for (const [args, code, msg] of cases) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(msg);
      expect(fs.existsSync(out)).toBe(false);
    }
    // mount --offline --deleted --dry-run: the plan, nothing made
    const mnt = path.join(dir, 'mnt');
    const dry = await cli(
      'mount',
      '--offline',
      '--deleted',
      '1',
      mnt,
      '--metadata',
      meta,
      '--data',
      data,
      '--dry-run',
      '--state-dir',
      path.join(dir, 'state'),
      '--work-dir',
      path.join(dir, 'work'),
    );
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/export --deleted --device-id 1 /);
    expect(dry.stdout).toMatch(/losetup --read-only \/dev\/loopN /);
    expect(fs.existsSync(mnt) || fs.existsSync(path.join(dir, 'work')) || fs.existsSync(path.join(dir, 'state'))).toBe(
      false,
    );
    const noOffline = await cli('mount', '--deleted', '1', mnt, '--metadata', meta);
    expect(noOffline.code).toBe(2);
    expect(noOffline.stderr).toMatch(/--deleted needs --offline/);
    fs.writeFileSync(out, 'keep me');
    const exists = await cli(...base, '--device-id', '1', out);
    expect(exists.code).toBe(9);
    expect(fs.readFileSync(out, 'utf8')).toBe('keep me');
    // an older version on request
    const v1 = await cli(...base, '--device-id', '1', '--version', '3', '--force', out, '--json');
    expect(v1.code, v1.stderr).toBe(0);
    const j = JSON.parse(v1.stdout);
    expect(j).toMatchObject({ version: 3, newest: false, sizeFrom: 'highest-mapped-block' });
    expect(hashFile(out)).toBe(j.sha256);
    expect(v1.stderr).toMatch(/not the newest/);
  }, 60_000);
});
