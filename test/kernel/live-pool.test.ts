/**
 * Issue 12 on a real kernel: `dminspect pool` on a LIVE loop-lvm pool made as Docker makes it
 * (guest/live-pool.sh): the numbers equal `dmsetup status`, per-device usage equals thin_ls -m, another holder is
 * refused and read with --metadata-snap, a run SIGKILLed while holding is cleaned up by the next run, the metrics
 * textfile comes from the live pool, and under load (thin devices created, written, deactivated, deleted) every
 * run exits 0 with its transaction id and data used between the kernel's just before and just after. No hold is
 * ever left behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import {
  CAPTURES_DIR,
  describeRun,
  guestScript,
  guestTimeoutMs,
  markers,
  poolStatusFields,
  PROJECT_ROOT,
  runInGuest,
  skipWithoutKernel,
  type GuestResult,
} from './harness.js';

const RUNS = Number(process.env.DMI_LIVE_RUNS ?? 50);

const status = poolStatusFields;

/** DMI_LIVE_DOCKER=0 skips the real-dockerd phase (D). */
const DOCKER = process.env.DMI_LIVE_DOCKER !== '0';

describe.skipIf(skipWithoutKernel(DOCKER ? ['thin', 'docker'] : ['thin']))(
  'pool on a live loop-lvm pool, real kernel',
  () => {
    let r: GuestResult;
    let m: Map<string, string[]>;
    const one = (k: string) => m.get(k)?.[0] ?? '';
    const json = (f: string) => JSON.parse(fs.readFileSync(path.join(r.scratch, f), 'utf8'));

    beforeAll(async () => {
      await execa('npm', ['run', '--silent', 'build'], { cwd: PROJECT_ROOT });
      r = await runInGuest({
        script: guestScript('live-pool.sh'),
        env: {
          PROJECT: PROJECT_ROOT,
          RUNS: String(RUNS),
          ...(DOCKER ? { CAPTURE: path.join(CAPTURES_DIR, 'xfs') } : {}),
        },
        timeoutSec: 1500,
      });
      m = markers(r.stdout);
      console.warn(
        `[live-pool] VM wall ${r.wallSec}s; ${one('L-runs')}; quiet run ${one('Q-ms')} ms; kernel ${one('kernel')}`,
      );
    }, guestTimeoutMs(1500));
    afterAll(async () => {
      await r?.cleanup();
    });

    it('the guest ran to the end', () => {
      expect(r.code, describeRun(r)).toBe(0);
      expect(m.has('done'), describeRun(r)).toBe(true);
    });

    it('quiet pool: transaction id, data and metadata used/total equal dmsetup status; devices equal thin_ls -m; no hold left', () => {
      const [b, a] = one('Q-status').split('|').map(status) as [ReturnType<typeof status>, ReturnType<typeof status>];
      expect(a, 'the pool was quiet').toEqual(b);
      const p = json('q/pool.json');
      expect(p.poolName).toBe(one('pool'));
      expect(p.live).toMatchObject({ pool: one('pool'), coherence: 'loop-backing-file', reservedByDminspect: true });
      expect(p.live.metadataRead).toMatch(/\/var\/lib\/docker\/devicemapper\/devicemapper\/metadata$/);
      expect([
        p.transactionId,
        p.data.usedBlocks,
        p.data.totalBlocks,
        p.metadata.usedBlocks,
        p.metadata.totalBlocks,
      ]).toEqual([b.txn, b.ud, b.td, b.um, b.tm]);
      expect(p.metadata.kernelRule).toBe('kernel');
      expect(p.metadata.reserveBlocks).toBe(Math.min(4096, Math.floor(b.tm / 10)));
      expect(p.live.status).toMatchObject({ mode: 'rw', noSpace: 'queue_if_no_space', heldMetadataRoot: null });
      // while held the kernel names the root read, and counts the hold's own metadata blocks
      expect(p.live.statusWhileHeld.heldMetadataRoot).toBe(p.live.heldRoot);
      expect(p.live.statusWhileHeld.usedMetadataBlocks).toBeGreaterThanOrEqual(b.um);
      expect(p.live.table).toMatchObject({ blockSectors: 128, lowWaterMark: 32768, features: ['skip_block_zeroing'] });
      expect(p.findings.map((f: { kind: string }) => f.kind)).not.toContain('table-block-size-differs');
      const ls = new Map<number, number[]>();
      for (const line of fs.readFileSync(path.join(r.scratch, 'q/thin_ls.txt'), 'utf8').trim().split('\n')) {
        const [dev, ...rest] = line.trim().split(/\s+/).map(Number);
        ls.set(dev!, rest);
      }
      expect(ls.size).toBe(4);
      expect(p.devices.length).toBe(4);
      for (const d of p.devices)
        expect([d.mappedBlocks, d.exclusiveBlocks, d.sharedBlocks], `device ${d.deviceId}`).toEqual(ls.get(d.deviceId));
      expect(one('Q-held-after')).toBe('- holds=0');
      const dry = fs.readFileSync(path.join(r.scratch, 'q/dry-run.txt'), 'utf8');
      expect(dry).toContain(`dmsetup message ${one('pool')} 0 reserve_metadata_snap`);
      expect(dry).toContain(`dmsetup message ${one('pool')} 0 release_metadata_snap`);
      expect(one('Q-dry-held')).toBe('- holds=0');
    });

    it('another holder: refused with CONFLICT (exit 9) in one line; --metadata-snap reads their snapshot and leaves it held', () => {
      expect(one('C-refused')).toBe('rc=9 lines=1');
      const [theirs, still] = one('C-theirs').split(' ');
      expect(theirs).toMatch(/^\d+$/);
      expect(still).toBe(theirs);
      const p = json('c-snap.json');
      expect(p.live).toMatchObject({ reservedByDminspect: false, heldRoot: Number(theirs) });
    });

    it('a run SIGKILLed while holding leaves the hold and its record; the next run clears both and says so', () => {
      const [held, holds, pid] = one('K-left').split(' ');
      expect(held).toMatch(/^\d+$/);
      expect(holds).toBe('holds=1');
      const rec = json('k-record.json');
      expect(rec).toMatchObject({ pool: one('pool'), pid: Number(pid!.replace('pid=', '')), heldRoot: Number(held) });
      const next = json('k-next.json');
      expect(next.findings.find((f: { kind: string }) => f.kind === 'stale-hold-cleared')).toMatchObject({
        severity: 'info',
        evidence: { pid: rec.pid, released: true },
      });
      expect(next.live.reservedByDminspect).toBe(true);
      expect(one('K-after')).toBe('- holds=0');
    });

    it('the metrics textfile is written from the live pool with the kernel’s figures', () => {
      const prom = fs.readFileSync(path.join(r.scratch, 'dminspect.prom'), 'utf8');
      const s = status(one('T-status'));
      const pool = one('pool');
      expect(prom).toContain(`dminspect_up{pool="${pool}"} 1`);
      expect(prom).toContain(`dminspect_pool_live{pool="${pool}"} 1`);
      expect(prom).toContain(`dminspect_pool_mode{pool="${pool}",mode="rw"} 1`);
      expect(prom).toContain(`dminspect_pool_transaction_id{pool="${pool}"} ${s.txn}`);
      expect(prom).toContain(`dminspect_pool_data_used_bytes{pool="${pool}"} ${s.ud * 65536}`);
      expect(prom).toContain(`dminspect_pool_metadata_used_bytes{pool="${pool}"} ${s.um * 4096}`);
      expect(prom).toContain(`dminspect_pool_metadata_snapshot_held{pool="${pool}"} 0`);
    });

    it(`under load, ${RUNS} runs: each exits 0, its transaction id and data used lie between the kernel's before and after; no hold left`, () => {
      const [l0, l1] = one('L-status').split('|').map(status) as [ReturnType<typeof status>, ReturnType<typeof status>];
      expect(l1.txn - l0.txn, 'the workload changed the pool').toBeGreaterThanOrEqual(10);
      let moved = 0;
      for (let i = 1; i <= RUNS; i++) {
        const rc = fs.readFileSync(path.join(r.scratch, `l/${i}.rc`), 'utf8').trim();
        expect(rc, `run ${i}: ${fs.readFileSync(path.join(r.scratch, `l/${i}.err`), 'utf8')}`).toBe('0');
        const b = status(fs.readFileSync(path.join(r.scratch, `l/${i}.before`), 'utf8'));
        const a = status(fs.readFileSync(path.join(r.scratch, `l/${i}.after`), 'utf8'));
        const p = json(`l/${i}.json`);
        if (a.txn !== b.txn) moved++;
        expect(p.transactionId, `run ${i}`).toBeGreaterThanOrEqual(b.txn);
        expect(p.transactionId, `run ${i}`).toBeLessThanOrEqual(a.txn);
        expect(p.data.usedBlocks, `run ${i}`).toBeGreaterThanOrEqual(b.ud);
        expect(p.data.usedBlocks, `run ${i}`).toBeLessThanOrEqual(a.ud);
        // the figures are from just before the reserve; the held copy is of the reserve's moment, before the run ended
        expect(p.live.snapshotTransactionId, `run ${i}`).toBeGreaterThanOrEqual(p.transactionId);
        expect(p.live.snapshotTransactionId, `run ${i}`).toBeLessThanOrEqual(a.txn);
        expect(p.live.reservedByDminspect).toBe(true);
        expect(b.held, `run ${i}: no hold before`).toBe('-');
        expect(a.held, `run ${i}: no hold after`).toBe('-');
      }
      console.warn(
        `[live-pool] load: transaction ${l0.txn} -> ${l1.txn}, data used ${l0.ud} -> ${l1.ud}; the pool changed during ${moved} of ${RUNS} runs`,
      );
      expect(moved, 'the pool changed during the runs (a load, not a quiet pool)').toBeGreaterThanOrEqual(
        Math.min(10, Math.ceil(RUNS / 5)),
      );
      expect(one('L-held-after')).toBe('- holds=0');
    });

    it('deleted --json on the live pool (after the load): read through a held snapshot, its live ids are the pool’s; no hold left', () => {
      const [rc, next, held, holds] = one('X-deleted').split(' ');
      expect(rc, fs.readFileSync(path.join(r.scratch, 'deleted.err'), 'utf8')).toBe('rc=0');
      expect([held, holds]).toEqual(['held=-', 'holds=0']);
      const d = json('deleted.json');
      // the load made 100, 102, … (kept) and 101, 103, … (deleted) up to next-id - 1; 1-4 from the start
      const last = Number(next!.replace('next-id=', ''));
      const live = [1, 2, 3, 4];
      for (let id = 100; id < last; id += 2) live.push(id);
      expect(last).toBeGreaterThan(100);
      expect(d.metadataFile).toMatch(/\/var\/lib\/docker\/devicemapper\/devicemapper\/metadata$/);
      expect([...d.liveDeviceIds].sort((a: number, b: number) => a - b)).toEqual(live);
      for (const dev of d.devices as { deviceId: number }[]) {
        expect(live, `deleted ${dev.deviceId} is not live`).not.toContain(dev.deviceId);
        expect(dev.deviceId % 2 === 1 && dev.deviceId > 100, `deleted ${dev.deviceId} is one the load deleted`).toBe(
          true,
        );
      }
      console.warn(
        `[live-pool] deleted on the live pool: ${d.devices.length} deleted devices found; ${live.length} live`,
      );
    });

    it.skipIf(!DOCKER)('a real dockerd 20.10 loop-lvm pool: pool --json equals dmsetup status and docker info', () => {
      const pool = one('D-pool');
      expect(pool).toMatch(/^docker-\d+:\d+-\d+-pool$/);
      const [b, a] = one('D-status').split('|').map(status) as [ReturnType<typeof status>, ReturnType<typeof status>];
      expect(a, 'the pool was quiet').toEqual(b);
      const p = json('d/pool.json');
      expect(p.poolName).toBe(pool);
      expect([
        p.transactionId,
        p.data.usedBlocks,
        p.data.totalBlocks,
        p.metadata.usedBlocks,
        p.metadata.totalBlocks,
      ]).toEqual([b.txn, b.ud, b.td, b.um, b.tm]);
      const ds = new Map<string, string>(json('d/driver-status.json'));
      console.warn(
        `[live-pool] dockerd ${pool}: dmsetup status txn ${b.txn} data ${b.ud}/${b.td} metadata ${b.um}/${b.tm}; docker info ${['Data Space Used', 'Data Space Total', 'Metadata Space Used', 'Metadata Space Total'].map((f) => `${f} ${ds.get(f)}`).join(', ')}`,
      );
      const compared = p.live.daemon.compared as { field: string; docker: string; dminspect: string; agree: boolean }[];
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
      expect(one('D-held-after')).toBe('- holds=0');
    });
  },
);
