/**
 * `pool` on a live pool: the held metadata snapshot (reserve, read from the held root, release — always), hold
 * records and stale holds, other holders, the kernel's figures and the mode findings.
 *
 * The kernel side is a FAKE (dmsetup cannot run here: this host has no device-mapper): `FakeThinKernel` answers
 * `dmsetup status / table / message` for one pool whose metadata is a REAL thin_restore'd file, and its
 * reserve_metadata_snap writes the superblock copy the way dm-thin-metadata.c `__reserve_metadata_snap` does
 * (same trees, zeroed space-map roots, held_root in block 0). The real kernel is exercised in
 * test/kernel/live-pool.test.ts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { poolAuditLive } from '../../src/audit/live.js';
import { dockerHumanSize } from '../../src/audit/daemon-view.js';
import { renderMetrics } from '../../src/audit/metrics.js';
import { renderPool } from '../../src/cli/commands/pool.js';
import { loadTables } from '../../src/cli/render.js';
import { DmHost } from '../../src/dm/host.js';
import { DockerRoot } from '../../src/docker/root.js';
import type { RunResult } from '../../src/dm/plan.js';
import { DmiError } from '../../src/errors.js';
import { holdFile, readHold, withRootPool } from '../../src/pool-source/live.js';
import { listDeleted, listDeletedLive } from '../../src/recover/deleted.js';
import { attachDeviceUsage, listDevices } from '../../src/model/listing.js';
import { containerReport } from '../../src/model/container.js';
import { attachUsage } from '../../src/model/container-usage.js';
import { deviceUsage } from '../../src/model/usage.js';
import { openPool } from '../../src/thin/index.js';
import {
  hasThinTools,
  patchBlock,
  randomPool,
  readBlock,
  removeTmp,
  restore,
  thinLs,
  tmpDir,
  writeBlock,
} from '../thin/helpers.js';

const POOL = 'docker-8:1-4242-pool';
const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface KernelState {
  mode: 'rw' | 'ro' | 'out_of_data_space' | 'fail';
  noSpace: 'queue_if_no_space' | 'error_if_no_space';
  /** Override the data used figure (near-full tests). */
  usedData?: number;
  blockSectors?: number;
  /** Make the snapshot copy unreadable (bad checksum): a read that fails while holding. */
  corruptCopy?: boolean;
}

/** FAKE kernel (see the header): one thin pool whose metadata device is a loop over `meta`. */
class FakeThinKernel {
  calls: string[][] = [];
  readonly sysfs: string;
  constructor(
    readonly meta: string,
    readonly st: KernelState = { mode: 'rw', noSpace: 'queue_if_no_space' },
  ) {
    this.sysfs = tmpDir();
    for (const [mm, dev, backing] of [
      ['7:1', 'loop1', meta],
      ['7:0', 'loop0', '/var/lib/docker/devicemapper/devicemapper/data'],
    ] as const) {
      const d = path.join(this.sysfs, 'dev', 'block', mm);
      fs.mkdirSync(path.join(d, 'loop'), { recursive: true });
      fs.writeFileSync(path.join(d, 'uevent'), `MAJOR=7\nMINOR=${mm.split(':')[1]}\nDEVNAME=${dev}\nDEVTYPE=disk\n`);
      fs.writeFileSync(path.join(d, 'loop', 'backing_file'), `${backing}\n`);
    }
  }
  get heldRoot(): number | null {
    return readBlock(this.meta, 0).readUInt32LE(56) || null;
  }
  private figures() {
    const p = openPool(this.meta);
    const sm = p.spaceMaps();
    const r = {
      txn: p.liveSuperblock.transactionId,
      ud: this.st.usedData ?? sm.data.used,
      td: sm.data.nrBlocks,
      um: Math.min(sm.metadata.nrBlocks, sm.metadata.used + Math.min(4096, Math.floor(sm.metadata.nrBlocks / 10))),
      tm: sm.metadata.nrBlocks,
      bs: p.dataBlockSectors,
    };
    p.close();
    return r;
  }
  readonly runner = async (argv: string[]): Promise<RunResult> => {
    this.calls.push(argv);
    const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
    const fail = (stderr: string): RunResult => ({ code: 1, stdout: '', stderr });
    if (argv[0] === 'blockdev') return ok();
    if (argv[0] !== 'dmsetup') return fail(`${argv[0]}: not found`);
    if (argv[2] !== POOL) return fail(`Device ${argv[2]} not found\nCommand failed.`);
    const f = this.figures();
    const sectors = f.td * f.bs;
    switch (argv[1]) {
      case 'status':
        if (this.st.mode === 'fail') return ok(`0 ${sectors} thin-pool Fail\n`);
        return ok(
          `0 ${sectors} thin-pool ${f.txn} ${f.um}/${f.tm} ${f.ud}/${f.td} ${this.heldRoot ?? '-'} ${this.st.mode} discard_passdown ${this.st.noSpace} - 1024\n`,
        );
      case 'table':
        return ok(`0 ${sectors} thin-pool 7:1 7:0 ${this.st.blockSectors ?? f.bs} 32768 1 skip_block_zeroing\n`);
      case 'message': {
        if (this.st.mode === 'ro' || this.st.mode === 'fail')
          return fail(`device-mapper: message ioctl on ${POOL}  failed: Operation not supported\nCommand failed.`);
        if (argv[4] === 'reserve_metadata_snap') {
          if (this.heldRoot !== null)
            return fail(`device-mapper: message ioctl on ${POOL}  failed: Device or resource busy\nCommand failed.`);
          const at = openPool(this.meta).metadataNrBlocks - 1;
          const copy = readBlock(this.meta, 0);
          copy.writeUInt32LE(at, 8); // blocknr
          copy.writeUInt32LE(0, 12);
          copy.fill(0, 64, 320); // space-map roots wiped
          writeBlock(this.meta, at, copy, 'superblock');
          if (this.st.corruptCopy) patchBlock(this.meta, at, null, (b) => b.writeUInt32LE(0xdeadbeef, 0));
          patchBlock(this.meta, 0, 'superblock', (b) => b.writeUInt32LE(at, 56));
          return ok();
        }
        if (argv[4] === 'release_metadata_snap') {
          if (this.heldRoot === null)
            return fail(`device-mapper: message ioctl on ${POOL}  failed: Invalid argument\nCommand failed.`);
          patchBlock(this.meta, 0, 'superblock', (b) => b.writeUInt32LE(0, 56));
          return ok();
        }
        return fail('unknown message');
      }
      default:
        return fail('unknown');
    }
  };
  host(): DmHost {
    const h = new DmHost(this.runner);
    h.hasDeviceMapper = () => true;
    return h;
  }
  messages(): string[] {
    return this.calls.filter((c) => c[1] === 'message').map((c) => c[4]!);
  }
}

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

describe.skipIf(!hasThinTools)('pool on a live pool (fake kernel over real metadata)', () => {
  afterAll(() => removeTmp());
  const setup = (st?: KernelState) => {
    const meta = restore(randomPool(3), 8 * 1024 * 1024);
    const k = new FakeThinKernel(meta, st);
    const stateDir = path.join(tmpDir(), 'run-dminspect');
    const opts = { pool: POOL, stateDir, sysfs: k.sysfs, kernelRelease: '6.1.0-57-amd64', daemon: null };
    return { meta, k, stateDir, opts };
  };

  it('reserves, reads the held root from the loop backing file, releases; the numbers are the kernel’s', async () => {
    const { meta, k, stateDir, opts } = setup();
    const r = await poolAuditLive(null, opts, k.host());
    if (r.dryRun) throw new Error('not a dry run');
    const rep = r.report;
    expect(k.messages()).toEqual(['reserve_metadata_snap', 'release_metadata_snap']);
    expect(
      k.calls.some((c) => c[0] === 'blockdev'),
      'a loop backing file needs no flushbufs',
    ).toBe(false);
    expect(k.heldRoot).toBeNull();
    expect(fs.existsSync(holdFile(stateDir, POOL))).toBe(false);
    const f = (k as any).figures();
    expect(rep.live).toMatchObject({
      pool: POOL,
      metadataRead: meta,
      coherence: 'loop-backing-file',
      reservedByDminspect: true,
      heldRoot: openPool(meta).metadataNrBlocks - 1,
    });
    // the figures shown: dmsetup status just before the reserve (no hold yet); the held one names the root read
    expect(rep.live!.status).toMatchObject({
      transactionId: f.txn,
      usedDataBlocks: f.ud,
      totalDataBlocks: f.td,
      usedMetadataBlocks: f.um,
      totalMetadataBlocks: f.tm,
      heldMetadataRoot: null,
      mode: 'rw',
      noSpace: 'queue_if_no_space',
      metadataLowWatermark: 1024,
    });
    expect(rep.live!.statusWhileHeld).toMatchObject({
      transactionId: f.txn,
      heldMetadataRoot: openPool(meta).metadataNrBlocks - 1,
    });
    expect([rep.transactionId, rep.data.usedBlocks, rep.metadata.usedBlocks, rep.metadata.totalBlocks]).toEqual([
      f.txn,
      f.ud,
      f.um,
      f.tm,
    ]);
    expect(rep.metadata.kernelRule).toBe('kernel');
    expect(rep.metadata.allocatedBlocks + rep.metadata.reserveBlocks).toBe(f.um);
    expect(rep.heldMetadataSnapshot, 'no one else held one').toBeNull();
    // per-device usage from the held trees equals thin_ls on the metadata
    const ls = thinLs(meta);
    expect(rep.devices.length).toBe(ls.size);
    for (const d of rep.devices) {
      const row = ls.get(d.deviceId)!;
      expect([d.mappedBlocks, d.exclusiveBlocks, d.sharedBlocks]).toEqual([row.mapped, row.exclusive, row.shared]);
    }
    expect(rep.findings.map((x) => x.kind)).not.toContain('table-block-size-differs');
    await loadTables();
    const text = renderPool(rep);
    expect(text).toMatch(
      /^source: +live: active in the kernel \(6\.1\.0-57-amd64\); read through dminspect's own held metadata snapshot \(released\) at block \d+, from the loop's backing file$/m,
    );
    expect(text).toMatch(/^mode: +rw, queue_if_no_space, discard_passdown$/m);
    expect(text).toContain(
      `transaction ${f.txn}; data ${f.ud}/${f.td}; metadata ${f.um}/${f.tm}; held root -; metadata low water mark 1024`,
    );
    expect(text).toContain('kernel (dmsetup status)');
    const prom = renderMetrics(rep, { durationSeconds: 1, lastSuccessSeconds: 1 });
    expect(prom).toContain(`dminspect_pool_live{pool="${POOL}"} 1`);
    expect(prom).toContain(`dminspect_pool_mode{pool="${POOL}",mode="rw"} 1`);
    expect(prom).toContain(`dminspect_pool_transaction_id{pool="${POOL}"} ${f.txn}`);
    expect(prom).toContain(`dminspect_pool_metadata_used_bytes{pool="${POOL}"} ${f.um * 4096}`);
  });

  it('a read that fails while holding still releases and removes the record', async () => {
    const { k, stateDir, opts } = setup({ mode: 'rw', noSpace: 'queue_if_no_space', corruptCopy: true });
    await expect(poolAuditLive(null, opts, k.host())).rejects.toThrow(DmiError);
    expect(k.messages()).toEqual(['reserve_metadata_snap', 'release_metadata_snap']);
    expect(k.heldRoot).toBeNull();
    expect(fs.existsSync(holdFile(stateDir, POOL))).toBe(false);
  });

  it('SIGTERM while holding: released once, then exit 143', async () => {
    const { k, stateDir, opts } = setup();
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    try {
      const run = poolAuditLive(null, { ...opts, holdDelayMs: 400 }, k.host());
      for (let i = 0; i < 100 && k.heldRoot === null; i++) await new Promise((r) => setTimeout(r, 20));
      expect(k.heldRoot).not.toBeNull();
      process.emit('SIGTERM', 'SIGTERM');
      await run.catch(() => null);
      for (let i = 0; i < 50 && exit.mock.calls.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(exit).toHaveBeenCalledWith(143);
      expect(k.messages()).toEqual(['reserve_metadata_snap', 'release_metadata_snap']);
      expect(k.heldRoot).toBeNull();
      expect(fs.existsSync(holdFile(stateDir, POOL))).toBe(false);
      expect(process.listenerCount('SIGTERM')).toBe(0);
    } finally {
      exit.mockRestore();
    }
  });

  // The built code (dist/, as the CLI runs it): there the read runs in a worker thread (pool-source/held-read.ts);
  // from the sources (the tests above) it runs on this thread. `npm run build` first (npm test's pretest does).
  const dist = async () =>
    (await import(
      pathToFileURL(path.join(PROJECT, 'dist/audit/live.js')).href
    )) as typeof import('../../src/audit/live.js');

  it('built code: the read runs in a worker thread; its report equals the one read on this thread', async () => {
    const { poolAuditLive: built } = await dist();
    const { k, opts } = setup();
    const here = await poolAuditLive(null, opts, k.host());
    const there = await built(null, { ...opts, readDelayMs: 1 }, k.host());
    if (here.dryRun || there.dryRun) throw new Error('not a dry run');
    expect(k.messages()).toEqual([
      'reserve_metadata_snap',
      'release_metadata_snap',
      'reserve_metadata_snap',
      'release_metadata_snap',
    ]);
    const plain = (r: object) => JSON.parse(JSON.stringify(r, (key, v) => (key === 'startedAt' ? undefined : v)));
    expect(plain(there.report)).toEqual(plain(here.report));
    expect(there.report.devices.length).toBeGreaterThan(0);
  });

  it('built code: a read that overruns the read timeout is abandoned and the hold released at once', async () => {
    const { poolAuditLive: built } = await dist();
    const { k, stateDir, opts } = setup();
    const t0 = Date.now();
    const e = await built(null, { ...opts, readTimeoutMs: 300, readDelayMs: 20_000 }, k.host()).catch(
      (x: unknown) => x,
    );
    expect(Date.now() - t0, 'not waiting for the read').toBeLessThan(10_000);
    expect(e).toMatchObject({
      code: 'CONFLICT',
      message: expect.stringMatching(/took longer than 0.3 s; abandoned, the snapshot is released/),
    });
    expect(k.messages()).toEqual(['reserve_metadata_snap', 'release_metadata_snap']);
    expect(k.heldRoot).toBeNull();
    expect(fs.existsSync(holdFile(stateDir, POOL))).toBe(false);
  });

  it('built code: SIGTERM during the read releases the hold at once, then exit 143', async () => {
    const { poolAuditLive: built } = await dist();
    const { k, stateDir, opts } = setup();
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    try {
      const run = built(null, { ...opts, readDelayMs: 20_000 }, k.host());
      void run.catch(() => null); // the read goes on after the (mocked) exit and fails: nothing is held any more
      for (
        let i = 0;
        i < 200 && !k.calls.some((c) => c[0] === 'dmsetup' && c[1] === 'status' && k.heldRoot !== null);
        i++
      )
        await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300)); // the worker is sleeping in its read now
      expect(k.heldRoot).not.toBeNull();
      const t0 = Date.now();
      process.emit('SIGTERM', 'SIGTERM');
      for (let i = 0; i < 250 && exit.mock.calls.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(exit).toHaveBeenCalledWith(143);
      expect(Date.now() - t0, 'not waiting for the read').toBeLessThan(5000);
      expect(k.messages()).toEqual(['reserve_metadata_snap', 'release_metadata_snap']);
      expect(k.heldRoot).toBeNull();
      expect(fs.existsSync(holdFile(stateDir, POOL))).toBe(false);
    } finally {
      exit.mockRestore();
    }
  });

  it('deleted on a live pool: through the held snapshot (on this thread and, built, in the worker), as the files say; no hold left', async () => {
    // kernel-written metadata with a deleted thin device (fixtures/captures/deleted-raw, a.tar.gz: thin 1 deleted)
    const dir = tmpDir();
    execFileSync('tar', ['--sparse', '-xzf', path.join(PROJECT, 'fixtures/captures/deleted-raw/a.tar.gz'), '-C', dir]);
    const offline = listDeleted(null, { metadata: path.join(dir, 'metadata'), checkData: false });
    expect(offline.devices.map((d) => d.deviceId)).toEqual([1]);
    const view = (r: typeof offline) =>
      r.devices.map((d) => ({
        id: d.deviceId,
        versions: d.versions.map((v) => [v.version, v.mappedBlocks, v.blocks]),
      }));
    const { listDeletedLive: built } = (await import(
      pathToFileURL(path.join(PROJECT, 'dist/recover/deleted.js')).href
    )) as typeof import('../../src/recover/deleted.js');
    for (const run of [listDeletedLive, built]) {
      const k = new FakeThinKernel(path.join(dir, 'metadata'));
      const stateDir = path.join(tmpDir(), 'run-dminspect');
      const r = await run(null, { pool: POOL, stateDir, sysfs: k.sysfs, checkData: false }, k.host());
      expect(k.messages()).toEqual(['reserve_metadata_snap', 'release_metadata_snap']);
      expect(k.heldRoot).toBeNull();
      expect(fs.existsSync(holdFile(stateDir, POOL))).toBe(false);
      expect(r.metadataFile).toBe(path.join(dir, 'metadata'));
      expect(r.liveDeviceIds).toEqual(offline.liveDeviceIds);
      expect(view(r)).toEqual(view(offline));
    }
    // --metadata-snap: another holder's snapshot, nothing reserved or released
    const k = new FakeThinKernel(path.join(dir, 'metadata'));
    await k.runner(['dmsetup', 'message', POOL, '0', 'reserve_metadata_snap']);
    k.calls.length = 0;
    const stateDir = path.join(tmpDir(), 'run-dminspect');
    const theirs = await listDeletedLive(
      null,
      { pool: POOL, stateDir, sysfs: k.sysfs, checkData: false, metadataSnap: true },
      k.host(),
    );
    expect(k.messages()).toEqual([]);
    expect(k.heldRoot).not.toBeNull();
    expect(view(theirs)).toEqual(view(offline));
  });

  it('a reserve that never answers: CONFLICT after the step timeout, the record stays for the next run', async () => {
    const { k, stateDir, opts } = setup();
    const host = k.host();
    const real = host.run;
    let hung: (() => void) | null = null;
    (host as { run: typeof real }).run = (argv) =>
      argv[4] === 'reserve_metadata_snap' ? new Promise((res) => (hung = () => void real(argv).then(res))) : real(argv);
    const e = await poolAuditLive(null, { ...opts, stepTimeoutMs: 150 }, host).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DmiError);
    expect((e as DmiError).message).toMatch(/reserve_metadata_snap got no answer; the hold record .* stays/);
    expect(readHold(stateDir, POOL)?.pid).toBe(process.pid);
    // the reserve lands later; the run is gone (its pid dead): the next run releases it and goes on
    hung!();
    for (let i = 0; i < 50 && k.heldRoot === null; i++) await new Promise((r) => setTimeout(r, 20));
    expect(k.heldRoot).not.toBeNull();
    fs.writeFileSync(holdFile(stateDir, POOL), JSON.stringify({ ...readHold(stateDir, POOL), pid: deadPid() }));
    const r = await poolAuditLive(null, opts, k.host());
    if (r.dryRun) throw new Error('not a dry run');
    expect(r.report.live!.staleHoldCleared).toMatchObject({ released: true });
    expect(k.heldRoot).toBeNull();
    expect(readHold(stateDir, POOL)).toBeNull();
  });

  it('a hold left by a killed run (dead pid) is released and its record removed, then the run goes on', async () => {
    const { k, stateDir, opts } = setup();
    await k.runner(['dmsetup', 'message', POOL, '0', 'reserve_metadata_snap']);
    k.calls = [];
    fs.mkdirSync(stateDir, { recursive: true });
    const pid = deadPid();
    fs.writeFileSync(
      holdFile(stateDir, POOL),
      JSON.stringify({
        version: 1,
        pool: POOL,
        pid,
        processStart: 1,
        startedAt: '2026-11-29T00:00:00Z',
        heldRoot: k.heldRoot,
      }),
    );
    const r = await poolAuditLive(null, opts, k.host());
    if (r.dryRun) throw new Error('not a dry run');
    expect(k.messages()).toEqual(['release_metadata_snap', 'reserve_metadata_snap', 'release_metadata_snap']);
    expect(r.report.findings.find((f) => f.kind === 'stale-hold-cleared')).toMatchObject({
      severity: 'info',
      evidence: { pid, released: true },
    });
    expect(r.report.live!.staleHoldCleared).toMatchObject({ pid, released: true });
    expect(k.heldRoot).toBeNull();
    expect(readHold(stateDir, POOL)).toBeNull();
  });

  it('a dead run’s record naming another root: the current hold is someone else’s and is not released', async () => {
    const { k, stateDir, opts } = setup();
    await k.runner(['dmsetup', 'message', POOL, '0', 'reserve_metadata_snap']);
    const theirs = k.heldRoot!;
    k.calls = [];
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(
      holdFile(stateDir, POOL),
      JSON.stringify({
        version: 1,
        pool: POOL,
        pid: deadPid(),
        processStart: 1,
        startedAt: 'then',
        heldRoot: theirs + 1,
      }),
    );
    await expect(poolAuditLive(null, opts, k.host())).rejects.toThrow(/held already .* by another tool/);
    expect(k.messages()).toEqual([]);
    expect(k.heldRoot).toBe(theirs);
    expect(readHold(stateDir, POOL), 'the stale record is gone').toBeNull();
  });

  it('another holder: CONFLICT in one line, nothing reserved or released; --metadata-snap reads theirs and leaves it held', async () => {
    const { k, stateDir, opts } = setup();
    await k.runner(['dmsetup', 'message', POOL, '0', 'reserve_metadata_snap']);
    const theirs = k.heldRoot;
    k.calls = [];
    const e = await poolAuditLive(null, opts, k.host()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DmiError);
    expect((e as DmiError).code).toBe('CONFLICT');
    expect((e as DmiError).message).toMatch(/a metadata snapshot is held already .*--metadata-snap/);
    expect((e as DmiError).message).not.toContain('\n');
    expect(k.messages()).toEqual([]);
    expect(fs.existsSync(holdFile(stateDir, POOL))).toBe(false);

    const r = await poolAuditLive(null, { ...opts, metadataSnap: true }, k.host());
    if (r.dryRun) throw new Error('not a dry run');
    expect(k.messages()).toEqual([]);
    expect(k.heldRoot).toBe(theirs);
    expect(r.report.live).toMatchObject({ reservedByDminspect: false, heldRoot: theirs });
    expect(r.report.heldMetadataSnapshot).toBe(theirs);
  });

  it('a live dminspect holder (its pid runs): CONFLICT naming it', async () => {
    const { k, stateDir, opts } = setup();
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(
      holdFile(stateDir, POOL),
      JSON.stringify({
        version: 1,
        pool: POOL,
        pid: process.pid,
        processStart: null,
        startedAt: 'now',
        heldRoot: null,
      }),
    );
    await expect(poolAuditLive(null, opts, k.host())).rejects.toThrow(
      new RegExp(`dminspect pid ${process.pid} holds its metadata snapshot`),
    );
    expect(k.messages()).toEqual([]);
    expect(readHold(stateDir, POOL)?.pid).toBe(process.pid);
  });

  it('--dry-run prints the exact commands and runs none that change anything', async () => {
    const { k, stateDir, opts } = setup();
    const r = await poolAuditLive(null, { ...opts, dryRun: true }, k.host());
    expect(r.dryRun).toBe(true);
    if (!r.dryRun) return;
    expect(r.plan).toContain(`dmsetup message ${POOL} 0 reserve_metadata_snap`);
    expect(r.plan).toContain(`dmsetup message ${POOL} 0 release_metadata_snap`);
    expect(r.plan).toContain(holdFile(stateDir, POOL));
    expect(k.messages()).toEqual([]);
    expect(fs.existsSync(stateDir)).toBe(false);
  });

  it.each([
    ['ro', 'pool-read-only'],
    ['fail', 'pool-failed'],
    ['out_of_data_space', 'pool-out-of-data-space'],
  ] as const)(
    'mode %s is a critical finding with a remedy (ro / fail: read without a hold: no messages)',
    async (mode, kind) => {
      const { k, opts } = setup({ mode, noSpace: 'error_if_no_space' });
      const r = await poolAuditLive(null, opts, k.host());
      if (r.dryRun) throw new Error('not a dry run');
      const f = r.report.findings.find((x) => x.kind === kind);
      expect(f).toMatchObject({ severity: 'critical' });
      expect(f!.remedy.length).toBeGreaterThan(20);
      expect(r.report.findings[0]!.severity).toBe('critical');
      if (mode !== 'out_of_data_space') {
        expect(k.messages()).toEqual([]);
        expect(r.report.live!.heldRoot).toBeNull();
      }
    },
  );

  it('queue_if_no_space with the data space nearly full: writes will hang; error_if_no_space: no such finding', async () => {
    const base = setup();
    const td = openPool(base.meta).dataNrBlocks;
    const q = setup({ mode: 'rw', noSpace: 'queue_if_no_space', usedData: td - 1 });
    const r = await poolAuditLive(null, q.opts, q.k.host());
    if (r.dryRun) throw new Error('not a dry run');
    expect(r.report.findings.find((x) => x.kind === 'writes-will-hang')).toMatchObject({
      severity: 'warning',
      evidence: { errorIfNoSpace: false },
    });
    const e = setup({ mode: 'rw', noSpace: 'error_if_no_space', usedData: td - 1 });
    const r2 = await poolAuditLive(null, e.opts, e.k.host());
    if (r2.dryRun) throw new Error('not a dry run');
    expect(r2.report.findings.map((x) => x.kind)).not.toContain('writes-will-hang');
    expect(r2.report.findings.map((x) => x.kind)).toContain('data-space-low');
  });

  it('dmsetup table’s block size against the metadata’s', async () => {
    const { k, opts } = setup({ mode: 'rw', noSpace: 'queue_if_no_space', blockSectors: 256 });
    const r = await poolAuditLive(null, opts, k.host());
    if (r.dryRun) throw new Error('not a dry run');
    expect(r.report.findings.find((x) => x.kind === 'table-block-size-differs')).toMatchObject({
      severity: 'critical',
      evidence: { tableBlockSectors: 256 },
    });
  });

  it('not root (dmsetup: permission denied): the root’s files are read offline; an explicit --pool is an error', async () => {
    const root = tmpDir();
    fs.mkdirSync(path.join(root, 'devicemapper', 'devicemapper'), { recursive: true });
    fs.mkdirSync(path.join(root, 'devicemapper', 'metadata'));
    fs.copyFileSync(restore(randomPool(4)), path.join(root, 'devicemapper', 'devicemapper', 'metadata'));
    const calls: string[][] = [];
    const host = new DmHost(async (argv) => {
      calls.push(argv);
      return {
        code: 1,
        stdout: '',
        stderr:
          '/dev/mapper/control: open failed: Permission denied\nFailure to communicate with kernel device-mapper driver.',
      };
    });
    host.hasDeviceMapper = () => true;
    const stateDir = path.join(tmpDir(), 'state');
    const r = await poolAuditLive(DockerRoot.open(root), { stateDir }, host);
    if (r.dryRun) throw new Error('not a dry run');
    expect(r.report.live).toBeNull();
    expect(r.report.metadata.kernelRule).toBe('reserve');
    expect(calls.map((c) => c.slice(0, 2).join(' '))).toEqual(['dmsetup status']);
    await expect(poolAuditLive(DockerRoot.open(root), { stateDir, pool: POOL }, host)).rejects.toThrow(/needs root/);
  });

  it('docker info beside the kernel’s figures (a FAKE daemon answer): equal as Docker prints them, or daemon-disagrees', async () => {
    expect(['0B', '999B', '1kB', '65.54kB', '11.53MB', '2.147GB', '107.4GB']).toEqual(
      [0, 999, 1000, 65536, 11534336, 2147483648, 107374182400].map(dockerHumanSize),
    );
    const { k, opts } = setup();
    const f = (k as any).figures();
    const bs = f.bs * 512;
    const fakeDaemon = (over: Record<string, string>) => async () => ({
      info: {
        host: 'unix:///fake.sock',
        serverVersion: '20.10.24+dfsg1',
        driver: 'devicemapper',
        dockerRootDir: '/var/lib/docker',
        driverStatus: {
          'Pool Name': POOL,
          'Data Space Used': dockerHumanSize(f.ud * bs),
          'Data Space Total': dockerHumanSize(f.td * bs),
          'Metadata Space Used': dockerHumanSize(f.um * 4096),
          'Metadata Space Total': dockerHumanSize(f.tm * 4096),
          ...over,
        },
      },
      container: async () => null,
    });
    const r = await poolAuditLive(null, { ...opts, daemon: fakeDaemon({}) }, k.host());
    if (r.dryRun) throw new Error('not a dry run');
    expect(r.report.live!.daemon!.compared.map((c) => [c.field, c.agree])).toEqual([
      ['Data Space Used', true],
      ['Data Space Total', true],
      ['Metadata Space Used', true],
      ['Metadata Space Total', true],
    ]);
    expect(r.report.findings.map((x) => x.kind)).not.toContain('daemon-disagrees');
    const bad = await poolAuditLive(
      null,
      { ...opts, daemon: fakeDaemon({ 'Metadata Space Used': dockerHumanSize((f.um + 1000) * 4096) }) },
      k.host(),
    );
    if (bad.dryRun) throw new Error('not a dry run');
    expect(bad.report.findings.find((x) => x.kind === 'daemon-disagrees')).toMatchObject({
      severity: 'warning',
      message: expect.stringContaining('Metadata Space Used'),
    });
    const other = await poolAuditLive(
      null,
      { ...opts, daemon: fakeDaemon({ 'Pool Name': 'docker-thinpool' }) },
      k.host(),
    );
    if (other.dryRun) throw new Error('not a dry run');
    expect(other.report.live!.daemon, 'a daemon on another pool is not compared').toBeNull();
  });

  it('container / devices usage reads the same way: inside the held snapshot (withRootPool + deviceUsage)', async () => {
    const { meta, k, stateDir } = setup();
    const root = tmpDir();
    fs.mkdirSync(path.join(root, 'devicemapper', 'metadata'), { recursive: true });
    const ls = thinLs(meta);
    const usage = await withRootPool(k.host(), root, { pool: POOL, stateDir, sysfs: k.sysfs }, (loc, held) => {
      expect(loc?.kind).toBe('live');
      expect(k.heldRoot, 'held while the usage is read').not.toBeNull();
      return deviceUsage(DockerRoot.open(root), [...ls.keys(), 999], { location: loc!, metadataSnap: held });
    });
    expect(k.messages()).toEqual(['reserve_metadata_snap', 'release_metadata_snap']);
    expect(k.heldRoot).toBeNull();
    for (const [id, row] of ls)
      expect([usage!.get(id)!.mappedBlocks, usage!.get(id)!.exclusiveBlocks]).toEqual([row.mapped, row.exclusive]);
    expect(usage!.get(999)).toBeNull();
    // --no-live: the callback gets no location, nothing is asked
    k.calls = [];
    expect(await withRootPool(k.host(), root, { pool: POOL, stateDir, live: false }, (loc) => loc)).toBeNull();
    expect(k.calls).toEqual([]);
  });

  it('built code: container / devices usage in the worker thread equals the read on this thread', async () => {
    const meta = path.join(tmpDir(), 'metadata');
    fs.copyFileSync(path.join(PROJECT, 'fixtures/sample/devicemapper/devicemapper/metadata'), meta);
    const k = new FakeThinKernel(meta);
    const stateDir = path.join(tmpDir(), 'run-dminspect');
    const sample = path.join(PROJECT, 'fixtures/sample');
    const choice = { pool: POOL, stateDir, sysfs: k.sysfs };
    const imp = async <M>(f: string) => (await import(pathToFileURL(path.join(PROJECT, 'dist', f)).href)) as M;
    const live = await imp<typeof import('../../src/pool-source/live.js')>('pool-source/live.js');
    const listing = await imp<typeof import('../../src/model/listing.js')>('model/listing.js');
    const container = await imp<typeof import('../../src/model/container.js')>('model/container.js');
    const containerUsage = await imp<typeof import('../../src/model/container-usage.js')>('model/container-usage.js');
    const root = DockerRoot.open(sample);
    const notHere = (): never => {
      throw new Error('read on this thread, not in the worker');
    };
    // devices
    const base = listing.listDevices(root, { pool: POOL });
    const there = await live.withRootPool(k.host(), sample, choice, notHere, (loc) => ({
      module: listing.LISTING_MODULE,
      fn: 'heldDeviceUsage',
      args: [base, sample, { pool: POOL, location: loc }],
    }));
    const here = await withRootPool(k.host(), sample, choice, (loc, held) =>
      attachDeviceUsage(listDevices(root, { pool: POOL }), root, { pool: POOL, location: loc!, metadataSnap: held }),
    );
    expect(there).toEqual(here);
    expect(here.devices.filter((d) => d.usage !== null).length).toBeGreaterThan(0);
    // container
    const ref = here.devices.find((d) => d.containerId !== null)?.containerId ?? '';
    const report = container.containerReport(root, ref, { pool: POOL });
    const cThere = await live.withRootPool(k.host(), sample, choice, notHere, (loc) => ({
      module: containerUsage.CONTAINER_USAGE_MODULE,
      fn: 'heldContainerUsage',
      args: [report, sample, { pool: POOL, location: loc }],
    }));
    const cHere = await withRootPool(k.host(), sample, choice, (loc, held) =>
      attachUsage(containerReport(root, ref, { pool: POOL }), root, { pool: POOL, location: loc!, metadataSnap: held }),
    );
    expect(cThere).toEqual(cHere);
    expect(k.messages()).toEqual(Array(4).fill(['reserve_metadata_snap', 'release_metadata_snap']).flat());
    expect(k.heldRoot).toBeNull();
  });

  it('a pool the kernel does not have: read offline (no messages, no hold)', async () => {
    const { k, opts } = setup();
    await expect(poolAuditLive(null, { ...opts, pool: 'docker-9:9-1-pool' }, k.host())).rejects.toThrow(
      /name the pool metadata with --metadata/,
    );
    expect(k.messages()).toEqual([]);
  });
});
