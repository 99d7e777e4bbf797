/**
 * `dminspect mount --offline` and `release`, end to end on this machine (no device-mapper needed): export to a
 * work image, a read-only loop device, a read-only mount; release leaves nothing behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import {
  buildFixture,
  evidenceDigest,
  loopsOf,
  mountedAt,
  run,
  sh,
  sha256File,
  SKIP_REASON,
  type Fixture,
} from './helpers.js';

const d = SKIP_REASON ? describe.skip : describe;

d('dminspect mount --offline / release (real loop devices and mounts)', () => {
  let fx: Fixture;
  let before: Record<string, string>;
  let base: string;
  let stateDir: string;
  let workDir: string;
  let n = 0;
  const mnt = () => path.join(base, `mnt-${++n}`);
  const common = () => ['--root', fx.root, '--state-dir', stateDir];

  beforeAll(() => {
    fx = buildFixture();
    before = evidenceDigest(fx.root);
    base = fs.mkdtempSync(path.join(fx.dir, 'offline-'));
    stateDir = path.join(base, 'state');
    workDir = path.join(base, 'work');
  });
  afterEach(() => {
    expect(evidenceDigest(fx.root)).toEqual(before);
  });
  afterAll(() => {
    if (!fx) return;
    // Best effort if a test failed half-way: unmount and detach what is left under the fixture.
    for (const l of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const mp = l.split(' ')[4];
      if (mp && mp.startsWith(fx.dir)) sh('umount', [mp], { allowFail: true });
    }
    const r = sh('losetup', ['-a'], { allowFail: true });
    for (const line of r.stdout.split('\n'))
      if (line.includes(fx.dir)) sh('losetup', ['-d', line.split(':')[0]!], { allowFail: true });
    fs.rmSync(fx.dir, { recursive: true, force: true });
  });

  it('mounts the xfs container read-only from an exported work image; release removes everything', async () => {
    const dir = mnt();
    const r = await run('mount', '--offline', 'web', dir, ...common(), '--work-dir', workDir, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.rootfs).toBe(path.join(dir, 'rootfs'));
    expect(j.export.sha256).toBe(fx.web.fs.sha256);
    const st = j.snapshot;
    expect(st).toMatchObject({
      mode: 'offline',
      mountPoint: dir,
      madeMountPoint: true,
      fsType: 'xfs',
      pool: null,
      snapId: null,
      image: { keep: false },
    });
    expect(st.image.path.startsWith(workDir + '/')).toBe(true);
    expect(j.commands).toEqual([
      expect.stringContaining(`mkdir ${dir}    # `),
      expect.stringContaining(`losetup --read-only ${st.image.loop} ${st.image.path}    # `),
      expect.stringContaining(`mount -t xfs -o ro,norecovery,nouuid ${st.image.loop} ${dir}    # `),
    ]);
    expect(fs.readFileSync(path.join(dir, 'rootfs', 'hello.txt'), 'utf8')).toBe('hello from web\n');
    expect(fs.readFileSync(path.join(dir, 'id'), 'utf8')).toBe(fx.web.mountId);
    expect(mountedAt(dir)).toBe(true);
    expect(loopsOf(st.image.path)).toEqual([st.image.loop]);
    expect(fs.readFileSync(`/sys/block/${path.basename(st.image.loop)}/ro`, 'utf8').trim()).toBe('1');
    expect(() => fs.writeFileSync(path.join(dir, 'rootfs', 'x'), 'x')).toThrow(/EROFS|read-only/i);
    const list = await run('snapshots', '--state-dir', stateDir, '--json');
    expect(JSON.parse(list.stdout).snapshots.map((s: any) => [s.name, s.mode])).toEqual([[st.name, 'offline']]);

    const dry = await run('release', dir, '--state-dir', stateDir, '--dry-run');
    expect(
      dry.stdout
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => l.replace(/ {4}#.*/, '')),
    ).toEqual([`umount ${dir}`, `rmdir ${dir}`, `losetup -d ${st.image.loop}`]);
    expect(mountedAt(dir)).toBe(true);
    const rel = await run('release', dir, '--state-dir', stateDir);
    expect(rel.code, rel.stderr).toBe(0);
    expect(mountedAt(dir)).toBe(false);
    expect(fs.existsSync(dir)).toBe(false);
    expect(loopsOf(st.image.path)).toEqual([]);
    expect(fs.existsSync(`/sys/block/${path.basename(st.image.loop)}/loop/backing_file`)).toBe(false);
    expect(fs.existsSync(st.image.path)).toBe(false);
    expect(fs.readdirSync(stateDir)).toEqual([]);
  });

  it('--keep-image keeps the work image; --image mounts it again (ext4) and never deletes it', async () => {
    const dir = mnt();
    fs.mkdirSync(dir);
    const r = await run('mount', '--offline', 'db', dir, ...common(), '--work-dir', workDir, '--keep-image', '--json');
    expect(r.code, r.stderr).toBe(0);
    const st = JSON.parse(r.stdout).snapshot;
    expect(st).toMatchObject({ fsType: 'ext4', madeMountPoint: false, image: { keep: true } });
    expect(fs.readFileSync(path.join(dir, 'rootfs', 'hello.txt'), 'utf8')).toBe('hello from db\n');
    const rel = await run('release', dir, '--state-dir', stateDir);
    expect(rel.code, rel.stderr).toBe(0);
    expect(fs.existsSync(dir)).toBe(true); // the user's directory stays
    expect(mountedAt(dir)).toBe(false);
    expect(loopsOf(st.image.path)).toEqual([]);
    expect(sha256File(st.image.path)).toBe(fx.db.fs.sha256);

    const again = await run('mount', '--offline', 'db', dir, ...common(), '--image', st.image.path, '--json');
    expect(again.code, again.stderr).toBe(0);
    const st2 = JSON.parse(again.stdout).snapshot;
    expect(st2).toMatchObject({ image: { path: st.image.path, keep: true }, fsType: 'ext4' });
    expect(JSON.parse(again.stdout).export).toBeNull();
    expect(fs.readFileSync(path.join(dir, 'id'), 'utf8')).toBe(fx.db.mountId);
    expect((await run('release', dir, '--state-dir', stateDir)).code).toBe(0);
    expect(fs.existsSync(st.image.path)).toBe(true);
    expect(loopsOf(st.image.path)).toEqual([]);
    expect(mountedAt(dir)).toBe(false);
    fs.rmSync(st.image.path);
    expect(fs.readdirSync(stateDir)).toEqual([]);
  });

  it('--dry-run prints the export and the commands and changes nothing', async () => {
    const dir = mnt();
    const r = await run('mount', '--offline', 'web', dir, ...common(), '--work-dir', workDir, '--dry-run');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      new RegExp(
        `^# export \\(done in-process\\): dminspect export --device-id ${fx.web.deviceId} --size 536870912 --metadata ${fx.metadata} --data ${fx.data} ${workDir}/dminspect-offline-[0-9a-f]{12}-1\\.img`,
      ),
    );
    expect(lines.slice(1, 4).map((l) => l.replace(/ {4}#.*/, ''))).toEqual([
      `mkdir ${dir}`,
      expect.stringMatching(new RegExp(`^losetup --read-only /dev/loopN ${workDir}/dminspect-offline-.*\\.img$`)),
      `mount -t xfs -o ro,norecovery,nouuid /dev/loopN ${dir}`,
    ]);
    expect(r.stdout).toContain(`#   losetup -d /dev/loopN`);
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.existsSync(workDir) ? fs.readdirSync(workDir) : []).toEqual([]);
    expect(fs.existsSync(stateDir) ? fs.readdirSync(stateDir) : []).toEqual([]);
  });

  it('refuses a non-empty mount point and offline-only flags without --offline', async () => {
    const dir = mnt();
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'x'), '');
    const r = await run('mount', '--offline', 'web', dir, ...common(), '--work-dir', workDir);
    expect(r.code).toBe(EXIT_CODES.CONFLICT);
    expect(r.stderr).toMatch(/not empty/);
    const u = await run('mount', 'web', mnt(), ...common(), '--image', '/nonexistent.img');
    expect(u.code).toBe(EXIT_CODES.USAGE);
    expect(fs.existsSync(workDir) ? fs.readdirSync(workDir) : []).toEqual([]);
  });

  it('an image with no known filesystem is UNSUPPORTED before any command; a given image is kept', async () => {
    const dir = mnt();
    const bogus = path.join(base, 'bogus.img');
    fs.writeFileSync(bogus, Buffer.alloc(1 << 20));
    const r = await run('mount', '--offline', 'web', dir, ...common(), '--image', bogus);
    expect(r.code).toBe(EXIT_CODES.UNSUPPORTED);
    expect(fs.existsSync(bogus)).toBe(true);
    expect(loopsOf(bogus)).toEqual([]);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('a mount that fails after losetup: the loop device is detached, the mount point and work image removed', async () => {
    const dir = mnt();
    // A data file whose first block of web says XFSB but is garbage: the probe says xfs, mount(8) fails.
    const data = path.join(base, 'garbage-data');
    fs.copyFileSync(fx.data, data);
    const first = fx.web.mappings.find((m) => m.v === 0)!;
    const junk = Buffer.alloc(64 * 1024, 0x5a);
    junk.write('XFSB', 0, 'latin1');
    const fd = fs.openSync(data, 'r+');
    fs.writeSync(fd, junk, 0, junk.length, first.d * 64 * 1024);
    fs.closeSync(fd);
    const m = await run('mount', '--offline', 'web', dir, ...common(), '--work-dir', workDir, '--data', data);
    expect(m.code).toBe(EXIT_CODES.CONFLICT);
    expect(m.stderr).toMatch(/mount read-only \(xfs, no journal replay\) failed: .*everything before it was undone/);
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.readdirSync(workDir)).toEqual([]);
    expect(sh('losetup', ['-a']).stdout).not.toContain(workDir);
    expect(fs.existsSync(stateDir) ? fs.readdirSync(stateDir) : []).toEqual([]);
  });
});
