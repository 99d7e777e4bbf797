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
import { execa } from 'execa';
import { cliJson, hashFile } from '../support/cli.js';
import {
  describeRun,
  guestScript,
  markers,
  poolStatusFields,
  PROJECT_ROOT,
  runInGuest,
  skipWithoutKernel,
  type GuestResult,
} from './harness.js';

/** `dminspect pool` runs on the live pool under load (guest LIVE_RUNS). */
const LIVE_RUNS = Number(process.env.DMI_LVM_LIVE_RUNS ?? 5);

const status = poolStatusFields;

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
      await execa('npm', ['run', '--silent', 'build'], { cwd: PROJECT_ROOT }); // the guest runs dist/ (live phase)
      const r = await runInGuest({
        script: guestScript('direct-lvm.sh'),
        env: { PROJECT: PROJECT_ROOT, LIVE_RUNS: String(LIVE_RUNS) },
        timeoutSec: 1200,
        memMB: 2048,
      });
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

    it("live (issue 12): pool --json on the running LVM pool equals dmsetup status, thin_ls and docker info; under load every run lies between the kernel's before and after; no hold left", () => {
      const r = runs[0];
      expect(r?.code, r && describeRun(r)).toBe(0);
      const m = markers(r!.stdout);
      const live = path.join(r!.scratch, 'capture', 'live');
      const read = (f: string) => fs.readFileSync(path.join(live, f), 'utf8');
      const pool = m.get('pool')![0]!;
      // dockerd's LVM pool, no thin LV on it: the pool LV itself is the thin-pool target (no -tpool layer)
      expect(read('table.txt')).toMatch(/^0 \d+ thin-pool \d+:\d+ \d+:\d+ 1024 0 1 skip_block_zeroing\s*$/);

      // quiet
      expect(read('q/1.rc').trim(), read('q/1.err')).toBe('0');
      const b = status(read('q/1.before'));
      const a = status(read('q/1.after'));
      expect(a, 'the pool was quiet').toEqual(b);
      const p = JSON.parse(read('q/1.json'));
      expect(p.poolName).toBe(pool);
      // the _tmeta LV is no loop: read through the block device after BLKFLSBUF
      expect(p.live).toMatchObject({ pool, coherence: 'flushbufs', reservedByDminspect: true });
      expect(p.live.metadataRead).toMatch(/^\/dev\/dm-\d+$/);
      expect([
        p.transactionId,
        p.data.usedBlocks,
        p.data.totalBlocks,
        p.metadata.usedBlocks,
        p.metadata.totalBlocks,
      ]).toEqual([b.txn, b.ud, b.td, b.um, b.tm]);
      expect(b.held).toBe('-');
      expect(p.metadata.kernelRule).toBe('kernel');
      expect(p.live.status).toMatchObject({ mode: 'rw', heldMetadataRoot: null });
      expect(p.live.statusWhileHeld.heldMetadataRoot).toBe(p.live.heldRoot);
      expect(p.live.table).toMatchObject({ blockSectors: 1024, features: ['skip_block_zeroing'] });
      expect(p.findings.map((f: { kind: string }) => f.kind)).not.toContain('table-block-size-differs');
      // per device: mapped / exclusive / shared equal thin_ls on a snapshot held right after
      const ls = new Map<number, number[]>();
      for (const line of read('q/thin_ls.txt').trim().split('\n')) {
        const [dev, ...rest] = line.trim().split(/\s+/).map(Number);
        ls.set(dev!, rest);
      }
      expect(ls.size).toBeGreaterThanOrEqual(5); // base, image layer, two containers and their init layers
      expect(p.devices.map((d: { deviceId: number }) => d.deviceId).sort()).toEqual([...ls.keys()].sort());
      for (const d of p.devices)
        expect([d.mappedBlocks, d.exclusiveBlocks, d.sharedBlocks], `device ${d.deviceId}`).toEqual(ls.get(d.deviceId));
      // docker info's DriverStatus, as the daemon printed it, agrees
      const ds = new Map<string, string>(JSON.parse(read('driver-status.json')));
      const compared = p.live.daemon.compared as { field: string; docker: string; dminspect: string }[];
      expect(compared.map((c) => c.field)).toEqual([
        'Data Space Used',
        'Data Space Total',
        'Metadata Space Used',
        'Metadata Space Total',
      ]);
      for (const c of compared) {
        expect(c.docker).toBe(ds.get(c.field));
        expect(c.dminspect, c.field).toBe(c.docker);
      }
      expect(p.findings.map((f: { kind: string }) => f.kind)).not.toContain('daemon-disagrees');
      expect(m.get('live-Q-held-after')).toEqual(['- holds=0']);

      // under load: a container writing, containers being created
      const [runsLine] = m.get('live-L-runs')!;
      expect(runsLine).toMatch(new RegExp(`^${LIVE_RUNS} created=\\d+$`));
      let moved = 0;
      for (let i = 1; i <= LIVE_RUNS; i++) {
        expect(read(`l/${i}.rc`).trim(), `run ${i}: ${read(`l/${i}.err`)}`).toBe('0');
        const lb = status(read(`l/${i}.before`));
        const la = status(read(`l/${i}.after`));
        const lp = JSON.parse(read(`l/${i}.json`));
        if (la.txn !== lb.txn || la.ud !== lb.ud) moved++;
        expect(lp.transactionId, `run ${i}`).toBeGreaterThanOrEqual(lb.txn);
        expect(lp.transactionId, `run ${i}`).toBeLessThanOrEqual(la.txn);
        expect(lp.data.usedBlocks, `run ${i}`).toBeGreaterThanOrEqual(lb.ud);
        expect(lp.data.usedBlocks, `run ${i}`).toBeLessThanOrEqual(la.ud);
        expect(lp.live.reservedByDminspect, `run ${i}`).toBe(true);
        expect([lb.held, la.held], `run ${i}: no hold before or after`).toEqual(['-', '-']);
      }
      console.warn(`[direct-lvm] live: the pool changed during ${moved} of ${LIVE_RUNS} runs (${runsLine})`);
      expect(moved, 'the pool changed during the runs').toBeGreaterThanOrEqual(1);
      expect(m.get('live-L-held-after')).toEqual(['- holds=0']);
    });
  },
);
