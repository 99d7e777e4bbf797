/**
 * `dminspect export` on real parts: xfs and ext4 filesystems made with mkfs and written through a loop mount,
 * their blocks scattered over a pool data file, the mapping written by thin_restore, Docker records with the
 * sizes. The exported image must be byte-identical to the filesystem (sha256), sparse where unmapped, and
 * mountable; the evidence files must be unchanged after every command.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { openPool } from '../../src/thin/pool.js';
import { copyThinDevice } from '../../src/thin/copy.js';
import { patchBlock } from '../thin/helpers.js';
import { BS, buildFixture, evidenceDigest, run, sh, sha256File, SKIP_REASON, type Fixture } from './helpers.js';

const d = SKIP_REASON ? describe.skip : describe;

d('dminspect export (real filesystems through real thin metadata)', () => {
  let fx: Fixture;
  let before: Record<string, string>;
  let out: string;
  let n = 0;
  const img = () => path.join(out, `out-${++n}.img`);

  beforeAll(() => {
    fx = buildFixture();
    before = evidenceDigest(fx.root);
    out = fs.mkdtempSync(path.join(fx.dir, 'out-'));
  });
  afterEach(() => {
    // Evidence is read-only: every file under the Docker root (records, metadata, data) is unchanged.
    expect(evidenceDigest(fx.root)).toEqual(before);
  });
  afterAll(() => {
    if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
  });

  const mountRead = (image: string, opts: string, files: string[]): string[] => {
    const mnt = fs.mkdtempSync(path.join(fx.dir, 'mnt-'));
    sh('mount', ['-o', `loop,${opts}`, image, mnt]);
    try {
      return files.map((f) => fs.readFileSync(path.join(mnt, f), 'utf8'));
    } finally {
      sh('umount', [mnt]);
      fs.rmdirSync(mnt);
    }
  };

  it('the fixture is fragmented: pieces out of order across the data file', () => {
    const ds = fx.web.mappings.map((m) => m.d);
    expect(ds).not.toEqual([...ds].sort((a, b) => a - b));
    expect(fx.web.mappings.some((m) => (m.len ?? 1) > 1)).toBe(true);
    expect(fx.web.fs.blocks.length).toBeGreaterThan(10);
  });

  it('exports an xfs container: sha256 of the filesystem image, sparse, mountable read-only', async () => {
    const o = img();
    const r = await run('export', 'web', o, '--root', fx.root, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    for (const k of ['image', 'size', 'sha256', 'device', 'mappedBytes', 'copiedBytes', 'holes', 'elapsedMs'])
      expect(j).toHaveProperty(k);
    expect(j).toMatchObject({
      image: o,
      size: 512 * 1024 * 1024,
      sha256: fx.web.fs.sha256,
      device: { deviceId: fx.web.deviceId, hash: fx.web.mountId },
      mappedBytes: fx.web.fs.blocks.length * BS,
      copiedBytes: fx.web.fs.blocks.length * BS,
    });
    expect(j.holes).toBeGreaterThan(1);
    expect(r.stderr).toBe(''); // no progress bar when stderr is not a TTY
    expect(sha256File(o)).toBe(fx.web.fs.sha256);
    const st = fs.statSync(o);
    expect(st.size).toBe(512 * 1024 * 1024);
    // Sparse: only about the mapped bytes are allocated.
    expect(st.blocks * 512).toBeLessThanOrEqual(j.mappedBytes + 1024 * 1024);
    expect(st.mode & 0o777).toBe(0o600);
    const [hello, id] = mountRead(o, 'ro,norecovery,nouuid', ['rootfs/hello.txt', 'id']);
    expect(hello).toBe('hello from web\n');
    expect(id).toBe(fx.web.mountId);
  });

  it('prints the sha256 in the human output', async () => {
    const o = img();
    const r = await run('export', fx.web.id.slice(0, 10), o, '--root', fx.root);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^sha256: +${fx.web.fs.sha256}$`, 'm'));
    expect(r.stdout).toMatch(/^image: .*\(sparse\)$/m);
    expect(r.stdout).toContain(`thin id ${fx.web.deviceId}`);
  });

  it('exports an ext4 container by device hash; mountable with noload', async () => {
    const o = img();
    const r = await run('export', fx.db.mountId, o, '--root', fx.root, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.sha256).toBe(fx.db.fs.sha256);
    expect(j.container).toBeNull();
    expect(sha256File(o)).toBe(fx.db.fs.sha256);
    expect(mountRead(o, 'ro,noload', ['rootfs/hello.txt', 'id'])).toEqual(['hello from db\n', fx.db.mountId]);
  });

  it('--no-sparse writes the zeros: same sha256, fully allocated', async () => {
    const o = img();
    const r = await run('export', 'web', o, '--root', fx.root, '--no-sparse', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ sha256: fx.web.fs.sha256, sparse: false });
    expect(sha256File(o)).toBe(fx.web.fs.sha256);
    expect(fs.statSync(o).blocks * 512).toBeGreaterThanOrEqual(512 * 1024 * 1024);
  });

  it('refuses to overwrite without --force (CONFLICT), overwrites with it', async () => {
    const o = img();
    fs.writeFileSync(o, 'precious');
    const r = await run('export', 'db', o, '--root', fx.root);
    expect(r.code).toBe(EXIT_CODES.CONFLICT);
    expect(r.stderr).toMatch(/exists \(pass --force/);
    expect(fs.readFileSync(o, 'utf8')).toBe('precious');
    const f = await run('export', 'db', o, '--root', fx.root, '--force', '--json');
    expect(f.code, f.stderr).toBe(0);
    expect(sha256File(o)).toBe(fx.db.fs.sha256);
  });

  it('refuses to write evidence or under the Docker root, even with --force', async () => {
    const a = await run('export', 'db', fx.data, '--root', fx.root, '--force');
    expect(a.code).toBe(EXIT_CODES.USAGE);
    expect(a.stderr).toMatch(/refusing to write under the Docker root/);
    const other = path.join(out, 'data-link');
    fs.symlinkSync(fx.data, other);
    const b = await run('export', 'db', other, '--root', fx.root, '--force');
    expect(b.code).toBe(EXIT_CODES.USAGE);
    expect(b.stderr).toMatch(/refusing to overwrite evidence/);
  });

  it('--device-id: size from the Docker record with that id, or --size', async () => {
    const o = img();
    const r = await run('export', '--device-id', String(fx.db.deviceId), o, '--root', fx.root, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      sha256: fx.db.fs.sha256,
      device: { deviceId: fx.db.deviceId, hash: fx.db.mountId },
    });
    // --size cuts the image (here 1 MiB + 512 bytes: the last block is cut too).
    const o2 = img();
    const size = 1024 * 1024 + 512;
    const s = await run(
      'export',
      '--device-id',
      String(fx.web.deviceId),
      o2,
      '--size',
      String(size),
      '--metadata',
      fx.metadata,
      '--data',
      fx.data,
      '--root',
      '/nonexistent',
      '--json',
    );
    expect(s.code, s.stderr).toBe(0);
    expect(fs.statSync(o2).size).toBe(size);
    const head = Buffer.alloc(size);
    const fd = fs.openSync(fx.web.fs.file, 'r');
    fs.readSync(fd, head, 0, size, 0);
    fs.closeSync(fd);
    expect(fs.readFileSync(o2).equals(head)).toBe(true);
    expect(JSON.parse(s.stdout).device.hash).toBeNull();
  });

  it('an unknown thin id is NOT_FOUND, with or without a record', async () => {
    const a = await run('export', '--device-id', '999', img(), '--root', fx.root, '--size', '4096');
    expect(a.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(a.stderr).toMatch(/thin device 999 is not in the pool metadata/);
    const b = await run('export', '--device-id', '999', img(), '--root', fx.root);
    expect(b.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(b.stderr).toMatch(/no Docker device record has device_id 999.*--size/);
    // Device 2 (the image layer) has a Docker record but is not in this pool.
    const c = await run('export', '--device-id', '2', img(), '--root', fx.root);
    expect(c.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(c.stderr).toMatch(/thin device 2 \(record .*\) is not in the pool metadata/);
    expect(fs.readdirSync(out).filter((f) => f.startsWith(`out-${n}`))).toEqual([]);
    const e = await run('export', 'nosuch', img(), '--root', fx.root);
    expect(e.code).toBe(EXIT_CODES.NOT_FOUND);
  });

  it('--metadata-snap reads the held snapshot: NOT_FOUND when none is held', async () => {
    const o = img();
    const r = await run('export', 'web', o, '--root', fx.root, '--metadata-snap');
    expect(r.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(r.stderr).toMatch(/no metadata snapshot is held/);
    expect(fs.existsSync(o)).toBe(false);
  });

  it('a data file shorter than a mapped block is BAD_INPUT naming the block; no partial image', async () => {
    const last = fx.web.mappings.reduce((a, m) => (m.d + (m.len ?? 1) - 1 > a ? m.d + (m.len ?? 1) - 1 : a), 0);
    const data = path.join(out, 'short-data');
    fs.copyFileSync(fx.data, data);
    fs.truncateSync(data, last * BS + 4096);
    const o = img();
    const r = await run('export', 'web', o, '--root', fx.root, '--data', data);
    expect(r.code).toBe(EXIT_CODES.BAD_INPUT);
    expect(r.stderr).toContain(`data block ${last} `);
    expect(r.stderr).toMatch(/past the end of the data file/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(fs.existsSync(o)).toBe(false);
  });

  it('a mapping past the data space map (nr_blocks) is BAD_INPUT', async () => {
    const meta = path.join(out, 'meta-small-nr');
    fs.copyFileSync(fx.metadata, meta);
    const last = Math.max(...fx.web.mappings.map((m) => m.d + (m.len ?? 1) - 1));
    // thin_restore refuses such a pool, so shrink nr_blocks of the data space map root in the superblock.
    patchBlock(meta, 0, 'superblock', (b) => b.writeBigUInt64LE(BigInt(last), 64));
    const o = img();
    const r = await run('export', 'web', o, '--root', fx.root, '--metadata', meta);
    expect(r.code).toBe(EXIT_CODES.BAD_INPUT);
    expect(r.stderr).toMatch(new RegExp(`maps data block ${last}, past the data device \\(${last} blocks\\)`));
    expect(fs.existsSync(o)).toBe(false);
  });

  it('a record size that is not a multiple of 512 is BAD_INPUT; --size too is checked', async () => {
    const root2 = path.join(out, 'root-badsize');
    const dm = path.join(fx.root, 'devicemapper', 'devicemapper');
    fs.cpSync(fx.root, root2, { recursive: true, filter: (p) => !p.startsWith(dm) });
    const rec = path.join(root2, 'devicemapper', 'metadata', fx.web.mountId);
    fs.writeFileSync(
      rec,
      JSON.stringify({ ...JSON.parse(fs.readFileSync(rec, 'utf8')), size: 512 * 1024 * 1024 - 100 }),
    );
    const o = img();
    const r = await run('export', 'web', o, '--root', root2, '--metadata', fx.metadata, '--data', fx.data);
    expect(r.code).toBe(EXIT_CODES.BAD_INPUT);
    expect(r.stderr).toContain(`${rec}: size ${512 * 1024 * 1024 - 100} is not a multiple of 512`);
    expect(fs.existsSync(o)).toBe(false);
    const s = await run('export', 'web', o, '--root', fx.root, '--size', '1000');
    expect(s.code).toBe(EXIT_CODES.USAGE);
  });

  it('the copier itself checks size and device id', async () => {
    const pool = openPool(fx.metadata);
    const fd = fs.openSync(path.join(out, 'direct.img'), 'w');
    try {
      await expect(
        copyThinDevice({ pool, devId: fx.web.deviceId, dataPath: fx.data, size: 1000, out: fd }),
      ).rejects.toMatchObject({ code: 'BAD_INPUT' });
      await expect(copyThinDevice({ pool, devId: 4242, dataPath: fx.data, size: 4096, out: fd })).rejects.toMatchObject(
        { code: 'NOT_FOUND' },
      );
      // A tiny buffer: many batches, runs split across them; same bytes.
      const r = await copyThinDevice({
        pool,
        devId: fx.db.deviceId,
        dataPath: fx.data,
        size: fx.db.fs.size,
        out: fd,
        bufferBytes: 3 * 512 * 128 + 512,
      });
      expect(r.sha256).toBe(fx.db.fs.sha256);
      const ns = await copyThinDevice({
        pool,
        devId: fx.db.deviceId,
        dataPath: fx.data,
        size: fx.db.fs.size,
        out: fd,
        sparse: false,
        bufferBytes: 3 * 512 * 128 + 512,
      });
      expect(ns).toMatchObject({
        sha256: fx.db.fs.sha256,
        holes: r.holes,
        holeBytes: r.holeBytes,
        copiedBytes: r.copiedBytes,
      });
      expect(sha256File(path.join(out, 'direct.img'))).toBe(fx.db.fs.sha256);
      const z = await copyThinDevice({ pool, devId: 1, dataPath: fx.data, size: 1 << 20, out: fd });
      expect(z).toMatchObject({
        mappedBytes: 0,
        copiedBytes: 0,
        holes: 1,
        holeBytes: 1 << 20,
        sha256: createHash('sha256')
          .update(Buffer.alloc(1 << 20))
          .digest('hex'),
      });
    } finally {
      fs.closeSync(fd);
      pool.close();
    }
  });

  it('ENOSPC: a clear IO error and the partial image removed', async () => {
    const small = fs.mkdtempSync(path.join(fx.dir, 'tiny-'));
    sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    try {
      const o = path.join(small, 'full.img');
      const r = await run('export', 'web', o, '--root', fx.root);
      expect(r.code).toBe(EXIT_CODES.IO);
      expect(r.stderr).toMatch(/full\.img: no space left on device/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(fs.readdirSync(small)).toEqual([]);
    } finally {
      sh('umount', [small]);
      fs.rmdirSync(small);
    }
  });
});
