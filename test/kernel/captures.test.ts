/**
 * The committed captures (fixtures/captures/<fs>/: docker-root.tar.gz + engine.json from a real dockerd):
 * their records agree with what the engine said, and in a fresh guest each container's thin device,
 * activated read-only from the restored files with Docker's pool table, has the sha256 the engine-side
 * capture recorded, an `id` file naming the bottom image layer's device and the file the container wrote.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkEngine, checkTarball, readEngine } from './engine.js';
import {
  CAPTURES_DIR,
  describeRun,
  guestScript,
  markers,
  runInGuest,
  skipWithoutKernel,
  type GuestResult,
} from './harness.js';

const FS = ['xfs', 'ext4'] as const;

describe('committed captures: records', () => {
  it.each(FS)('%s: engine.json and docker-root.tar.gz agree', async (fsType) => {
    const dir = path.join(CAPTURES_DIR, fsType);
    const engine = readEngine(path.join(dir, 'engine.json'));
    checkEngine(engine, fsType);
    for (const img of engine.images) expect(img.device?.sha256).toMatch(/^[0-9a-f]{64}$/);
    await checkTarball(path.join(dir, 'docker-root.tar.gz'), engine);
  });
});

describe.skipIf(skipWithoutKernel(['thin', 'xfs']))('committed captures: restored in a fresh guest', () => {
  const runs: GuestResult[] = [];
  afterAll(async () => {
    for (const r of runs) await r.cleanup();
  });

  it.each(FS)('%s: every container device has the sha256 the engine-side capture recorded', async (fsType) => {
    const dir = path.join(CAPTURES_DIR, fsType);
    expect(fs.existsSync(path.join(dir, 'docker-root.tar.gz'))).toBe(true);
    const engine = readEngine(path.join(dir, 'engine.json'));
    const r = await runInGuest({ script: guestScript('restore-check.sh'), env: { CAPTURE: dir }, timeoutSec: 600 });
    runs.push(r);
    expect(r.code, describeRun(r)).toBe(0);
    const m = markers(r.stdout);
    const by = (key: string) => new Map((m.get(key) ?? []).map((l) => [l.split(' ')[0] ?? '', l.split(' ').slice(1)]));

    // GNU tar --sparse restored the sparse pool files: apparent size >> allocated
    const [apparent, allocated] = (m.get('restored')?.[0] ?? '').split(' ').map(Number);
    expect(apparent).toBeGreaterThan(engine.pool.lengthSectors * 512);
    expect(allocated).toBeLessThan(apparent! / 4);
    expect(m.get('thin_check')?.[0] ?? '').toMatch(/^rc=0\b/);
    const thinDevs = (m.get('thin_ls')?.[0] ?? '').split(' ').filter(Boolean).map(Number);
    for (const c of engine.containers) expect(thinDevs).toContain(c.device.id);
    // the pool made again with Docker's table
    const pool = m.get('pool')?.[0] ?? '';
    expect(pool).toMatch(
      new RegExp(
        `^${engine.pool.name} 0 ${engine.pool.lengthSectors} thin-pool \\d+:\\d+ \\d+:\\d+ 128 32768 1 skip_block_zeroing$`,
      ),
    );

    const sha = by('sha256');
    const attr = by('attr');
    const ids = by('id');
    const files = by('file');
    for (const c of engine.containers) {
      expect(sha.get(c.name), c.name).toEqual([String(c.device.bytes), c.device.sha256]);
      expect(attr.get(c.name)?.[0], c.name).toMatch(/^L--r$/); // live, read-only
      // the `id` file is written only when missing, at the first mount in a chain: so it names the
      // bottom image layer's device, inherited by every snapshot, not the container's own device
      expect(ids.get(c.name)?.[0], c.name).toBe(engine.images[0]?.deviceHash);
      expect(Buffer.from(files.get(c.name)?.[0] ?? '', 'base64').toString('utf8'), c.name).toBe(c.file.content);
    }
    expect(m.get('done')).toBeDefined();
  });
});
