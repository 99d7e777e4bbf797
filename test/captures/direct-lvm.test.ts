/**
 * Offline tests on the committed direct-lvm capture (fixtures/captures/direct-lvm): a real dockerd 20.10 made its
 * LVM thin pool itself on a 3 GiB disk (dm.directlvm_device) in a VM (test/kernel/guest/direct-lvm.sh); the disk
 * (after a clean stop and vgchange -an) and the Docker root are archived with what the engine, LVM and the kernel
 * said (engine.json). dminspect, reading the disk image with no LVM tools and no device-mapper, must agree: the
 * pool numbers with thin_ls on the `_tmeta` bytes the kernel's table points at, the LVM facts with LVM's report,
 * the devices with docker inspect, every export with the kernel's sha256; and the disk is never written.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliJson, hashFile, readFromImage, REPO, tmpDir, thinLsRows } from '../support/cli.js';

const DIR = path.join(REPO, 'fixtures', 'captures', 'direct-lvm');
const present = fs.existsSync(path.join(DIR, 'disk.img.tar.gz'));
const hasThinLs = spawnSync('thin_ls', ['-V'], { stdio: 'ignore' }).status === 0;
const canMount = process.getuid?.() === 0 && spawnSync('losetup', ['--version'], { stdio: 'ignore' }).status === 0;

interface Engine {
  pool: { name: string; transactionId: number };
  setupConfig: { Device: string } | null;
  lvs: { report: { lv: Record<string, string>[] }[] };
  vgcfgbackup: string;
  dmsetupTable: string[];
  disk: { member: string; apparentBytes: number; sha256: string };
  containers: {
    id: string;
    name: string;
    deviceName: string;
    deviceId: number;
    deviceSize: number;
    device: { id: number; bytes: number; sha256: string };
    file: { path: string; content: string };
  }[];
}

/** The byte ranges of the disk a dm device maps (linear targets over the disk's loop device), from `dmsetup table`. */
function linearRanges(table: string[], name: string): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  for (const l of table) {
    const m = new RegExp(`^${name}: (\\d+) (\\d+) linear \\d+:\\d+ (\\d+)\\s*$`).exec(l);
    if (m) out.push({ offset: Number(m[3]) * 512, length: Number(m[2]) * 512 });
  }
  return out;
}

describe.skipIf(!present)('real capture: direct-lvm (dockerd-made LVM thin pool on a raw disk image)', () => {
  let t = '';
  let disk = '';
  let root = '';
  let engine: Engine;
  beforeAll(() => {
    t = tmpDir('dminspect-capture-lvm-');
    execFileSync('tar', ['--sparse', '-xzf', path.join(DIR, 'disk.img.tar.gz'), '-C', t]);
    execFileSync('tar', ['-xzf', path.join(DIR, 'docker-root.tar.gz'), '-C', t]);
    engine = JSON.parse(fs.readFileSync(path.join(DIR, 'engine.json'), 'utf8'));
    disk = path.join(t, engine.disk.member);
    root = path.join(t, 'docker');
    expect(fs.statSync(disk).size).toBe(engine.disk.apparentBytes);
    expect(hashFile(disk)).toBe(engine.disk.sha256);
  }, 120_000);

  it("lvm --image: the VG, the thin pool, its hidden LVs at the bytes the kernel mapped, LVM's transaction id", async () => {
    const r = await cliJson('lvm', '--image', disk);
    expect(r.vgs.map((v: { name: string }) => v.name)).toEqual(['docker']);
    const lvNames = engine.lvs.report[0]!.lv.map((l) => (l.lv_name ?? '').replace(/^\[|\]$/g, '')).sort();
    expect(r.vgs[0].lvs.map((l: { name: string }) => l.name).sort()).toEqual(lvNames);
    expect(r.thinPools).toHaveLength(1);
    const p = r.thinPools[0];
    const lvmTxn = Number(/thinpool \{[\s\S]*?transaction_id = (\d+)/.exec(engine.vgcfgbackup)![1]);
    const chunk = Number(/thinpool \{[\s\S]*?chunk_size = (\d+)/.exec(engine.vgcfgbackup)![1]);
    expect(p.pool).toMatchObject({
      vg: 'docker',
      lv: 'thinpool',
      dmName: 'docker-thinpool',
      transactionId: lvmTxn,
      chunkSizeSectors: chunk,
      metadataLv: 'thinpool_tmeta',
      dataLv: 'thinpool_tdata',
    });
    // the kernel's table of the LVs (linear over the loop device) = where dminspect found them in the image
    const strip = (xs: { offset: number; length: number }[]) => xs.map(({ offset, length }) => ({ offset, length }));
    expect(strip(p.pool.metadata.extents)).toEqual(linearRanges(engine.dmsetupTable, 'docker-thinpool_tmeta'));
    expect(strip(p.pool.data.extents)).toEqual(linearRanges(engine.dmsetupTable, 'docker-thinpool_tdata'));
    expect(p.superblock).toMatchObject({
      transactionId: engine.pool.transactionId,
      dataBlockSectors: chunk,
      needsCheck: false,
    });
    expect(p.findings.filter((f: { severity: string }) => f.severity !== 'info')).toEqual([]);
    const out = await (await import('../support/cli.js')).cli('lvm', '--image', disk);
    expect(out.stdout).toMatch(new RegExp(`transaction id: +LVM ${lvmTxn}, superblock ${engine.pool.transactionId}`));
  });

  it.skipIf(!hasThinLs)(
    'pool --root --image: numbers equal thin_ls on the _tmeta bytes cut out of the image',
    async () => {
      const meta = path.join(t, 'tmeta.bin');
      const ranges = linearRanges(engine.dmsetupTable, 'docker-thinpool_tmeta');
      expect(ranges.length).toBeGreaterThan(0);
      const out = fs.openSync(meta, 'w');
      let at = 0;
      for (const r of ranges) {
        execFileSync('dd', [
          `if=${disk}`,
          `of=${meta}`,
          'bs=512',
          `skip=${r.offset / 512}`,
          `seek=${at / 512}`,
          `count=${r.length / 512}`,
          'conv=notrunc,sparse',
          'status=none',
        ]);
        at += r.length;
      }
      fs.closeSync(out);
      const ls = thinLsRows(meta);
      const r = await cliJson('pool', '--root', root, '--image', disk, '--sort', 'id');
      expect(r.poolName).toBe('docker-thinpool');
      expect(r.metadataFile).toBe(`${disk}: docker/thinpool_tmeta`);
      expect(r.transactionId).toBe(engine.pool.transactionId);
      expect(r.lvm).toMatchObject({ vg: 'docker', lv: 'thinpool', dmName: 'docker-thinpool' });
      expect(r.spaceMapProblems).toEqual([]);
      expect(r.devices.map((d: { deviceId: number }) => d.deviceId)).toEqual([...ls.keys()].sort((a, b) => a - b));
      for (const d of r.devices) {
        expect(
          [d.mappedBlocks, d.exclusiveBlocks, d.sharedBlocks, d.transactionId, d.creationTime, d.snapTime],
          `device ${d.deviceId}`,
        ).toEqual(ls.get(d.deviceId));
      }
      // the same numbers from the cut-out file through --metadata
      const plain = await cliJson('pool', '--root', root, '--metadata', meta, '--sort', 'id');
      expect(
        plain.devices.map((d: { deviceId: number; mappedBlocks: number }) => [d.deviceId, d.mappedBlocks]),
      ).toEqual(r.devices.map((d: { deviceId: number; mappedBlocks: number }) => [d.deviceId, d.mappedBlocks]));
      for (const c of engine.containers)
        expect(r.devices.find((d: { deviceId: number }) => d.deviceId === c.deviceId)).toMatchObject({
          role: 'container',
          containerName: c.name,
        });
    },
  );

  it('container: device ids and sizes equal docker inspect', async () => {
    for (const c of engine.containers) {
      const r = await cliJson('container', c.name, '--root', root, '--image', disk);
      expect(r.id).toBe(c.id);
      expect(r.device.deviceId).toBe(c.deviceId);
      expect(r.device.size).toBe(c.deviceSize);
      // the device prefix (docker-MAJ:MIN-INO) comes from stat of the root: on a copy it is the copy's, and a
      // direct-lvm pool name (docker-thinpool) carries none; the hash part is Docker's
      const hashOf = (n: string) => n.replace(/^docker-\d+:\d+-\d+-/, '');
      expect(hashOf(r.device.name)).toBe(hashOf(c.deviceName));
      expect(hashOf(c.deviceName)).toMatch(/^[0-9a-f]{64}$/);
      expect(r.device.table).toBe(`0 ${c.deviceSize / 512} thin /dev/mapper/docker-thinpool ${c.deviceId}`);
    }
  });

  it('export --image: each container byte for byte what the kernel read; its file reads back after a read-only loop mount; the disk unchanged', async () => {
    const out = tmpDir('dminspect-capture-lvm-export-');
    for (const c of engine.containers) {
      const img = path.join(out, `${c.name}.img`);
      const r = await cliJson('export', c.name, img, '--root', root, '--image', disk);
      expect(r.sha256, `${c.name}: export through LVM equals the thin device read through the kernel`).toBe(
        c.device.sha256,
      );
      expect(r.size).toBe(c.device.bytes);
      expect(r.data).toBe(`${disk}: docker/thinpool_tdata`);
      expect(hashFile(img)).toBe(c.device.sha256);
      expect(fs.statSync(img).blocks * 512, 'sparse').toBeLessThan(c.device.bytes / 2);
      if (canMount) expect(readFromImage(img, 'xfs', path.join('rootfs', c.file.path)), c.name).toBe(c.file.content);
      fs.rmSync(img);
    }
    expect(hashFile(disk)).toBe(engine.disk.sha256);
  });
});
