/**
 * Offline tests on the committed real captures (fixtures/captures/{xfs,ext4}): Docker roots written by a real
 * dockerd 20.10 with devicemapper in a VM (test/kernel), with what the engine said recorded beside them in
 * engine.json. dminspect's answers must equal the engine's; the pool numbers must equal thin_ls on the same file.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliJson, hashFile, readFromImage, REPO, tmpDir, treeDigest, thinLsRows } from '../support/cli.js';

const hasThinLs = spawnSync('thin_ls', ['-V'], { stdio: 'ignore' }).status === 0;

interface Engine {
  fs: string;
  pool: { name: string; devicePrefix: string };
  images: {
    id: string;
    tags: string[];
    deviceHash: string;
    graphDriver: { Data: { DeviceId: string; DeviceName: string; DeviceSize: string } };
  }[];
  containers: {
    id: string;
    name: string;
    file: { path: string; content: string };
    device: { id: number; bytes: number; sha256: string };
    stateAfterStop: { Running: boolean; StartedAt: string; ExitCode: number };
    imageId: string;
    image: string;
    deviceHash: string;
    graphDriver: { Data: { DeviceId: string; DeviceName: string; DeviceSize: string } };
  }[];
}

for (const kind of ['xfs', 'ext4']) {
  const dir = path.join(REPO, 'fixtures', 'captures', kind);
  const present = fs.existsSync(path.join(dir, 'docker-root.tar.gz'));
  describe.skipIf(!present)(`real capture: ${kind}`, () => {
    let root = '';
    let engine: Engine;
    beforeAll(() => {
      const t = tmpDir('dminspect-capture-');
      execFileSync('tar', ['-xzf', path.join(dir, 'docker-root.tar.gz'), '-C', t]);
      root = path.join(t, 'docker');
      engine = JSON.parse(fs.readFileSync(path.join(dir, 'engine.json'), 'utf8'));
    });

    it('containers: the engine’s ids, names and states', async () => {
      const r = await cliJson('containers', '--root', root);
      const got = new Map(r.containers.map((c: { id: string }) => [c.id, c]));
      expect(r.containers).toHaveLength(engine.containers.length);
      for (const e of engine.containers) {
        const c: any = got.get(e.id);
        expect(c, e.name).toBeTruthy();
        expect(c.name).toBe(e.name);
        expect(c.state).toBe(
          e.stateAfterStop.Running ? 'running' : e.stateAfterStop.StartedAt.startsWith('0001') ? 'created' : 'exited',
        );
        expect(c.deviceId).toBe(Number(e.graphDriver.Data.DeviceId));
        expect(c.size).toBe(Number(e.graphDriver.Data.DeviceSize));
        expect(c.mountId).toBe(e.deviceHash);
        expect(c.image).toBe(e.image);
      }
    });

    it('container: device id, size, device name and pool equal docker inspect’s GraphDriver.Data', async () => {
      for (const e of engine.containers) {
        const r = await cliJson('container', e.name, '--root', root, '--pool', engine.pool.name);
        expect(r.id).toBe(e.id);
        expect(r.device.deviceId).toBe(Number(e.graphDriver.Data.DeviceId));
        expect(r.device.size).toBe(Number(e.graphDriver.Data.DeviceSize));
        expect(r.device.name).toBe(e.graphDriver.Data.DeviceName);
        expect(r.device.table).toBe(
          `0 ${Number(e.graphDriver.Data.DeviceSize) / 512} thin /dev/mapper/${engine.pool.name} ${e.graphDriver.Data.DeviceId}`,
        );
        expect(`sha256:${r.image.id}`).toBe(e.imageId);
        expect(r.layers.length).toBeGreaterThan(0);
        expect(r.problems).toEqual([]);
      }
    });

    it('devices: image layers are named with the images’ tags and ids as the engine reports them', async () => {
      const r = await cliJson('devices', '--root', root);
      for (const img of engine.images) {
        const d = r.devices.find((x: { hash: string }) => x.hash === img.deviceHash);
        expect(d, img.tags.join()).toBeTruthy();
        expect(d.role).toBe('layer');
        expect(d.deviceId).toBe(Number(img.graphDriver.Data.DeviceId));
        for (const t of img.tags) expect(d.imageNames).toContain(t);
      }
      expect(r.devices.find((x: { role: string }) => x.role === 'unreferenced')).toBeUndefined();
    });

    const canMount = process.getuid?.() === 0 && spawnSync('losetup', ['--version'], { stdio: 'ignore' }).status === 0;
    it('export: each container device, byte for byte what the kernel read (sha256 in engine.json); evidence unchanged', async () => {
      const out = tmpDir('dminspect-capture-export-');
      const data = path.join(root, 'devicemapper/devicemapper/data');
      const meta = path.join(root, 'devicemapper/devicemapper/metadata');
      const before = [hashFile(meta), hashFile(data)];
      for (const c of engine.containers) {
        const img = path.join(out, `${c.name}.img`);
        const r = await cliJson('export', c.name, img, '--root', root);
        expect(r.sha256, `${c.name}: export equals the thin device read through the kernel`).toBe(c.device.sha256);
        expect(r.size).toBe(c.device.bytes);
        expect(fs.statSync(img).size).toBe(c.device.bytes);
        expect(fs.statSync(img).blocks * 512, 'sparse: unmapped blocks are holes').toBeLessThan(c.device.bytes / 2);
        if (canMount)
          expect(readFromImage(img, engine.fs, path.join('rootfs', c.file.path)), c.name).toBe(c.file.content);
        fs.rmSync(img);
      }
      expect([hashFile(meta), hashFile(data)]).toEqual(before);
      // three exports, three loop mounts and two full-file hashes: ~20 s quiet, past 60 s on a busy 2-core host
    }, 240_000);

    it.skipIf(!hasThinLs)(
      'pool: kernel-written metadata (version 2, shared subtrees) equals thin_ls, count by count',
      async () => {
        const meta = path.join(root, 'devicemapper/devicemapper/metadata');
        const ls = thinLsRows(meta);
        const noData = (rel: string) => rel === 'devicemapper/data'; // 2 GiB sparse: pool never opens it (export's tests hash it)
        const before = treeDigest(path.join(root, 'devicemapper'), noData);
        const r = await cliJson('pool', '--root', root, '--sort', 'id');
        expect(r.version).toBe(2);
        expect(r.spaceMapProblems).toEqual([]); // the kernel's space maps are consistent
        expect(r.devices.map((d: { deviceId: number }) => d.deviceId)).toEqual([...ls.keys()].sort((a, b) => a - b));
        for (const d of r.devices) {
          expect(
            [d.mappedBlocks, d.exclusiveBlocks, d.sharedBlocks, d.transactionId, d.creationTime, d.snapTime],
            `device ${d.deviceId}`,
          ).toEqual(ls.get(d.deviceId));
        }
        expect(r.findings.filter((f: { severity: string }) => f.severity !== 'info')).toEqual([]);
        const c = await cliJson('container', engine.containers[0]!.name, '--root', root);
        const row = ls.get(c.device.deviceId)!;
        expect([c.usage.mappedBlocks, c.usage.exclusiveBlocks, c.usage.sharedBlocks]).toEqual(row.slice(0, 3));
        expect(c.usage.mappedBytes).toBe(row[0]! * 65536);
        expect(treeDigest(path.join(root, 'devicemapper'), noData)).toEqual(before);
      },
    );
  });
}
