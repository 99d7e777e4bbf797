/**
 * A real dockerd 20.10 in direct-lvm mode in a real kernel: dockerd itself makes the LVM thin pool
 * (dm.directlvm_device on a loop device over a sparse 3 GiB disk file: pvcreate, vgcreate, lvcreate, lvconvert),
 * containers write files, docker inspect, clean stop, each container's thin device hashed through the kernel while
 * the pool is active, vgchange -an, the disk file and the Docker root archived (test/kernel/guest/direct-lvm.sh).
 * Then, on this host with no device-mapper, dminspect reads that disk offline: every container exports byte for
 * byte what the kernel read, and the disk is not changed. The same scenario made the committed
 * fixtures/captures/direct-lvm/ (make-capture.sh there).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliJson, hashFile } from '../support/cli.js';
import { describeRun, guestScript, markers, runInGuest, skipWithoutKernel, type GuestResult } from './harness.js';

const hasLvm =
  spawnSync('sh', ['-c', 'command -v pvcreate'], {
    stdio: 'ignore',
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
  }).status === 0;

describe.skipIf(skipWithoutKernel(['docker', 'thin']) || !hasLvm)(
  'real dockerd 20.10, devicemapper direct-lvm (dockerd makes the LVM thin pool)',
  () => {
    const runs: GuestResult[] = [];
    let tmp = '';
    afterAll(async () => {
      for (const r of runs) await r.cleanup();
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    });

    it('auto-setup on a loop device, containers, clean stop, vgchange -an; the disk read offline equals the kernel', async () => {
      const r = await runInGuest({ script: guestScript('direct-lvm.sh'), timeoutSec: 900, memMB: 2048 });
      runs.push(r);
      expect(r.code, describeRun(r)).toBe(0);
      const m = markers(r.stdout);
      expect(m.get('pool')).toEqual(['docker-thinpool']);
      expect(m.get('done')).toBeTruthy();
      const cap = path.join(r.scratch, 'capture');
      const e = JSON.parse(fs.readFileSync(path.join(cap, 'engine.json'), 'utf8'));

      // dockerd's own direct-lvm setup, as LVM recorded it
      const loop = m.get('loop')![0]!;
      expect(e.setupConfig).toMatchObject({ Device: loop, ThinpPercent: 95, ThinpMetaPercent: 1 });
      expect(e.dockerdExit).toBe(0);
      expect(e.driverStatus['Pool Name']).toBe('docker-thinpool');
      const history = (e.lvmHistory as string[]).join('\n');
      // LVM archives the VG before each command that changes it: the commands are Docker's own (device_setup.go)
      expect(history).toContain("'lvcreate --wipesignatures y -n thinpool docker --extents 95%VG'");
      expect(history).toContain("'lvcreate --wipesignatures y -n thinpoolmeta docker --extents 1%VG'");
      expect(history).toContain(
        "'lvconvert -y --zero n -c 512K --thinpool docker/thinpool --poolmetadata docker/thinpoolmeta'",
      );
      expect(history).toContain("'lvchange --metadataprofile docker-thinpool docker/thinpool'");
      expect(history).not.toMatch(/--config/); // only this run's commands
      const lvs = e.lvs.report[0].lv as { lv_name: string; devices: string }[];
      expect(lvs.map((l) => l.lv_name).sort()).toEqual([
        '[lvol0_pmspare]',
        '[thinpool_tdata]',
        '[thinpool_tmeta]',
        'thinpool',
      ]);
      expect(e.dmsetupTable.find((l: string) => l.startsWith('docker-thinpool: '))).toMatch(
        /^docker-thinpool: 0 \d+ thin-pool \d+:\d+ \d+:\d+ 1024 0 1 skip_block_zeroing\s*$/,
      );
      expect(e.vgcfgbackup).toMatch(/thinpool \{[\s\S]*type = "thin-pool"[\s\S]*chunk_size = 1024/);
      expect(e.containers).toHaveLength(2);
      for (const c of e.containers) {
        expect(c.device, c.name).toMatchObject({
          id: c.deviceId,
          bytes: c.deviceSize,
          sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        });
        expect(c.file.content).toMatch(/^dminspect marker: written by /);
      }

      // offline, on this host: restore the sparse disk and the Docker root, export every container through LVM
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dminspect-direct-lvm-'));
      execFileSync('tar', ['--sparse', '-xzf', path.join(cap, 'disk.img.tar.gz'), '-C', tmp]);
      execFileSync('tar', ['-xzf', path.join(cap, 'docker-root.tar.gz'), '-C', tmp]);
      const disk = path.join(tmp, 'disk.img');
      const root = path.join(tmp, 'docker');
      expect(fs.statSync(disk).size).toBe(e.disk.apparentBytes);
      expect(hashFile(disk)).toBe(e.disk.sha256);
      const t0 = Date.now();
      for (const c of e.containers) {
        const img = path.join(tmp, `${c.name}.img`);
        const x = await cliJson('export', c.name, img, '--root', root, '--image', disk);
        expect(x.sha256, `${c.name}: export through LVM equals the kernel`).toBe(c.device.sha256);
        expect(x.metadata).toBe(`${disk}: docker/thinpool_tmeta`);
        fs.rmSync(img);
      }
      console.log(
        `direct-lvm: guest ${r.wallSec}s; offline export of ${e.containers.length} containers ${Date.now() - t0} ms`,
      );
      expect(hashFile(disk)).toBe(e.disk.sha256);
    });
  },
);
