/**
 * Direct-lvm, offline: the export fixture's pool put inside a real LVM disk (pvcreate on a loop device,
 * vgcfgrestore of Docker's direct-lvm layout: VG docker, thin pool docker/thinpool, `_tmeta` and `_tdata` in two
 * segments each, out of order on the PV), the thin_restore metadata written into the `_tmeta` extents and the
 * filesystems' blocks into the `_tdata` extents. `export --image` and `mount --offline --image` read the pool
 * through LVM's extents; the disk image is never written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { classifyImages } from '../../src/forensics/offline.js';
import { locateLvmPool, openLvmPoolMetadata } from '../../src/pool-source/lvm.js';
import { ExtentMap } from '../../src/io/extents.js';
import { copyThinDevice } from '../../src/thin/copy.js';
import {
  attach,
  detachAll,
  hasLvm,
  linear,
  lvm,
  pvsJson,
  restoreVg,
  vgBackup,
  withLvs,
  removeTmp,
} from '../lvm/helpers.js';
import { buildFixture, loopsOf, mountedAt, run, sh, sha256File, SKIP_REASON, type Fixture } from './helpers.js';

const MiB = 1024 * 1024;
const d = SKIP_REASON || !hasLvm ? describe.skip : describe;

interface Seg {
  extents: number;
  pe: number;
}

d('direct-lvm disks: export and mount --offline through LVM (real LVM on a loop device)', () => {
  let fx: Fixture;
  let disk: string;
  let diskSha: string;
  let base: string;
  let peStart: number;
  const tmeta: Seg[] = [];
  const tdata: Seg[] = [];
  let n = 0;
  const out = (name: string) => path.join(base, `${++n}-${name}`);

  /** Writes `file` into the LV made of `segs` (PV extents of 1 MiB from pe_start). */
  const fill = (file: string, segs: Seg[]) => {
    const src = fs.readFileSync(file);
    const fd = fs.openSync(disk, 'r+');
    let at = 0;
    for (const s of segs) {
      const len = Math.min(s.extents * MiB, src.length - at);
      if (len > 0) fs.writeSync(fd, src, at, len, peStart + s.pe * MiB);
      at += s.extents * MiB;
    }
    fs.closeSync(fd);
  };

  beforeAll(() => {
    fx = buildFixture();
    base = fs.mkdtempSync(path.join(fx.dir, 'lvm-'));
    const metaBytes = fs.statSync(fx.metadata).size;
    const dataBytes = fs.statSync(fx.data).size;
    const metaExt = Math.ceil(metaBytes / MiB);
    const dataExt = Math.ceil(dataBytes / MiB);
    // PV layout (1 MiB extents): [pmspare][tdata part 2][tmeta part 2][tdata part 1][tmeta part 1]
    const d1 = Math.ceil(dataExt / 2);
    const d2 = dataExt - d1;
    const m1 = Math.ceil(metaExt / 2);
    const m2 = metaExt - m1;
    let pe = 0;
    const spare = { extents: metaExt, pe };
    pe += metaExt;
    const td2 = { extents: d2, pe };
    pe += d2;
    const tm2 = { extents: m2, pe };
    pe += m2;
    const td1 = { extents: d1, pe };
    pe += d1;
    const tm1 = { extents: m1, pe };
    pe += m1;
    tmeta.push(tm1, tm2);
    tdata.push(td1, td2);

    disk = path.join(base, 'disk.img');
    fs.writeFileSync(disk, '');
    fs.truncateSync(disk, (pe + 8) * MiB);
    const dev = attach(disk);
    try {
      lvm([dev], 'pvcreate', '-ff', '-y', dev);
      lvm([dev], 'vgcreate', '-s', '1M', 'docker', dev);
      const text = withLvs(vgBackup([dev], 'docker'), [
        {
          name: 'thinpool',
          segments: [
            {
              extents: dataExt,
              body: `type = "thin-pool"\nmetadata = "thinpool_tmeta"\npool = "thinpool_tdata"\ntransaction_id = 0\nchunk_size = 128\ndiscards = "passdown"\nzero_new_blocks = 0`,
            },
          ],
        },
        {
          name: 'lvol0_pmspare',
          visible: false,
          segments: [{ extents: spare.extents, body: linear('pv0', spare.pe) }],
        },
        {
          name: 'thinpool_tmeta',
          visible: false,
          segments: tmeta.map((s) => ({ extents: s.extents, body: linear('pv0', s.pe) })),
        },
        {
          name: 'thinpool_tdata',
          visible: false,
          segments: tdata.map((s) => ({ extents: s.extents, body: linear('pv0', s.pe) })),
        },
      ]);
      restoreVg([dev], 'docker', text);
      peStart = Number(pvsJson([dev], 'pv_name,pe_start')[0]!.pe_start);
    } finally {
      detachAll();
    }
    fill(fx.metadata, tmeta);
    fill(fx.data, tdata);
    // The Docker root is now a direct-lvm host's: no loop files, a setup-config.json.
    fs.rmSync(fx.metadata);
    fs.rmSync(fx.data);
    fs.writeFileSync(
      path.join(fx.root, 'devicemapper', 'setup-config.json'),
      JSON.stringify({
        directlvm_device: '/dev/xvdf',
        thinp_percent: 95,
        thinp_metapercent: 1,
        thinp_autoextend_percent: 20,
        thinp_autoextend_threshold: 80,
      }),
    );
    diskSha = sha256File(disk);
  }, 180_000);

  afterAll(() => {
    detachAll();
    removeTmp();
    if (!fx) return;
    for (const l of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const mp = l.split(' ')[4];
      if (mp && mp.startsWith(fx.dir)) sh('umount', [mp], { allowFail: true });
    }
    const r = sh('losetup', ['-a'], { allowFail: true });
    for (const line of r.stdout.split('\n'))
      if (line.includes(fx.dir)) sh('losetup', ['-d', line.split(':')[0]!], { allowFail: true });
    expect(sha256File(disk)).toBe(diskSha);
    fs.rmSync(fx.dir, { recursive: true, force: true });
  });

  it('LVM places _tmeta and _tdata in two segments each, out of order on the PV', () => {
    const { pool, findings } = locateLvmPool([disk], { pool: 'docker-thinpool' });
    expect(findings.filter((f) => f.severity !== 'info')).toEqual([]);
    expect(pool.metadata!.extents.map((e) => e.offset)).toEqual(tmeta.map((s) => peStart + s.pe * MiB));
    expect(pool.data!.extents.map((e) => [e.offset, e.length])).toEqual(
      tdata.map((s) => [peStart + s.pe * MiB, s.extents * MiB]),
    );
    expect(pool.data!.extents[0]!.offset).toBeGreaterThan(pool.data!.extents[1]!.offset);
    // some mapping run of each container crosses the _tdata segment boundary or not: either way the copy is exact
    const thin = openLvmPoolMetadata(pool);
    expect(
      thin
        .mappingRoots()
        .map((r) => r.devId)
        .sort(),
    ).toEqual([1, fx.web.deviceId, fx.db.deviceId].sort());
    thin.close();
  });

  it.each(['web', 'db'] as const)(
    'export %s --image disk.img: byte-exact, the file reads back after a read-only loop mount',
    async (name) => {
      const c = fx[name];
      const img = out(`${name}.img`);
      const r = await run('export', name, img, '--root', fx.root, '--image', disk, '--json');
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.sha256).toBe(c.fs.sha256);
      expect(j.metadata).toBe(`${disk}: docker/thinpool_tmeta`);
      expect(j.data).toBe(`${disk}: docker/thinpool_tdata`);
      expect(j.warnings).toEqual([]);
      expect(sha256File(img)).toBe(c.fs.sha256);
      const mnt = out('mnt');
      fs.mkdirSync(mnt);
      sh('mount', ['-o', `loop,ro,${c.fs.fsType === 'xfs' ? 'norecovery,nouuid' : 'noload'}`, img, mnt]);
      try {
        expect(fs.readFileSync(path.join(mnt, 'rootfs', 'hello.txt'), 'utf8')).toBe(c.fs.hello);
        expect(fs.readFileSync(path.join(mnt, 'id'), 'utf8')).toBe(c.mountId);
      } finally {
        sh('umount', [mnt]);
      }
      expect(sha256File(disk)).toBe(diskSha);
    },
  );

  it('copyThinDevice over extents: small buffers, not sparse, same bytes; --device-id with --pool vg/lv', async () => {
    const { pool } = locateLvmPool([disk]);
    const thin = openLvmPoolMetadata(pool);
    try {
      const img = out('small.img');
      const fd = fs.openSync(img, 'w');
      const r = await copyThinDevice({
        pool: thin,
        devId: fx.db.deviceId,
        dataPath: disk,
        dataExtents: pool.data!.extents,
        dataLabel: pool.data!.label,
        size: fx.db.fs.size,
        out: fd,
        sparse: false,
        bufferBytes: 3 * 512 * 128 + 512,
      });
      fs.closeSync(fd);
      expect(r.sha256).toBe(fx.db.fs.sha256);
      expect(sha256File(img)).toBe(fx.db.fs.sha256);
    } finally {
      thin.close();
    }
    const img = out('by-id.img');
    const r = await run(
      'export',
      '--device-id',
      String(fx.web.deviceId),
      '--size',
      String(fx.web.fs.size),
      img,
      '--image',
      disk,
      '--pool',
      'docker/thinpool',
      '--root',
      path.join(base, 'no-root'),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(sha256File(img)).toBe(fx.web.fs.sha256);
  });

  it('data shorter than a mapped block: BAD_INPUT naming the block (extents cut short, image truncated)', async () => {
    const { pool } = locateLvmPool([disk]);
    const thin = openLvmPoolMetadata(pool);
    const last = [...thin.mappingRuns(fx.web.deviceId)].reduce((a, b) => (b.dblock > a.dblock ? b : a));
    const cut = last.dblock * 65536; // the data ends where this run starts
    try {
      const map = new ExtentMap(pool.data!.extents);
      const short = [...map.pieces(0, cut)].map(({ path: p, offset, length }) => ({ path: p, offset, length }));
      const fd = fs.openSync(out('short.img'), 'w');
      await expect(
        copyThinDevice({
          pool: thin,
          devId: fx.web.deviceId,
          dataPath: disk,
          dataExtents: short,
          dataLabel: 'disk: docker/thinpool_tdata',
          size: fx.web.fs.size,
          out: fd,
        }),
      ).rejects.toMatchObject({
        code: 'BAD_INPUT',
        message: expect.stringMatching(
          new RegExp(
            `^disk: docker/thinpool_tdata: data block ${last.dblock} \\(virtual block ${last.vblock} of thin device ${fx.web.deviceId}\\) is past the end of the data \\(${cut} bytes`,
          ),
        ),
      });
      // the image itself shorter than the extents say: a short read, named the same way
      const trunc = out('trunc.img');
      const piece = [...map.pieces(cut, 1)][0]!;
      fs.copyFileSync(disk, trunc);
      fs.truncateSync(trunc, piece.offset);
      const ext = pool.data!.extents.map((e) => ({ ...e, path: trunc }));
      const err = await copyThinDevice({
        pool: thin,
        devId: fx.web.deviceId,
        dataPath: trunc,
        dataExtents: ext,
        size: fx.web.fs.size,
        out: fd,
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: 'BAD_INPUT',
        message: expect.stringMatching(
          new RegExp(
            `^${trunc}: data block \\d+ \\(virtual block \\d+ of thin device ${fx.web.deviceId}\\) is at byte \\d+ of ${trunc}, past its end \\(${piece.offset} bytes\\): truncated image\\?$`,
          ),
        ),
      });
      // the block named is one whose bytes lie past the cut
      const named = Number(/data block (\d+)/.exec((err as Error).message)![1]);
      expect([...map.pieces(named * 65536, 65536)].some((q) => q.offset + q.length > piece.offset)).toBe(true);
      fs.closeSync(fd);
    } finally {
      thin.close();
    }
  });

  it('a direct-lvm root without --image: the error says to pass --image', async () => {
    const r = await run('export', 'web', out('x.img'), '--root', fx.root);
    expect(r.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(r.stderr).toMatch(/setup-config\.json shows a direct-lvm setup: pass --image <disk image>/);
    const m = await run('mount', '--offline', 'web', out('m'), '--root', fx.root, '--state-dir', out('state'));
    expect(m.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(m.stderr).toMatch(/pass --image/);
  });

  it('--image files are sorted by content: a filesystem is an exported image, LVM is a disk', () => {
    const exported = out('e.img');
    fs.copyFileSync(fx.db.fs.file, exported);
    expect(classifyImages([disk])).toEqual({ exported: null, exportedFs: null, disks: [disk] });
    expect(classifyImages([exported])).toMatchObject({ exported, exportedFs: 'ext4', disks: [] });
    expect(() => classifyImages([exported, disk])).toThrow(/is an exported filesystem image and .* is a disk image/);
    expect(() => classifyImages([exported, fx.web.fs.file])).toThrow(/both filesystem images/);
  });

  it('mount --offline --image disk.img: exported through LVM, mounted read-only; release removes everything', async () => {
    const dir = out('mnt');
    const stateDir = out('state');
    const workDir = out('work');
    const r = await run(
      'mount',
      '--offline',
      'web',
      dir,
      '--root',
      fx.root,
      '--image',
      disk,
      '--state-dir',
      stateDir,
      '--work-dir',
      workDir,
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.export.sha256).toBe(fx.web.fs.sha256);
    expect(j.export.data).toBe(`${disk}: docker/thinpool_tdata`);
    expect(j.snapshot).toMatchObject({ mode: 'offline', fsType: 'xfs', image: { keep: false } });
    expect(fs.readFileSync(path.join(dir, 'rootfs', 'hello.txt'), 'utf8')).toBe('hello from web\n');
    expect(mountedAt(dir)).toBe(true);
    const dry = await run(
      'mount',
      '--offline',
      'db',
      out('m2'),
      '--root',
      fx.root,
      '--image',
      disk,
      '--state-dir',
      stateDir,
      '--work-dir',
      workDir,
      '--dry-run',
    );
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`--image ${disk} --pool docker-thinpool`);
    const rel = await run('release', dir, '--state-dir', stateDir);
    expect(rel.code, rel.stderr).toBe(0);
    expect(mountedAt(dir)).toBe(false);
    expect(fs.existsSync(j.snapshot.image.path)).toBe(false);
    expect(loopsOf(disk)).toEqual([]);
    expect(sha256File(disk)).toBe(diskSha);
  });
});
