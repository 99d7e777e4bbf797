import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildV2Root, sha } from '../../scripts/docker-root-builder.js';
import { DockerRoot } from '../../src/docker/root.js';
import { DmHost } from '../../src/dm/host.js';
import type { RunResult } from '../../src/dm/plan.js';
import { DmiError } from '../../src/errors.js';
import { pickSnapId, poolThinIds, releaseSnapshot, snapshotContainer } from '../../src/forensics/live.js';
import { releasePlan } from '../../src/forensics/plans.js';
import { listStates } from '../../src/forensics/state.js';
import { cli, cliJson, SAMPLE, spawnCli, tmpDir } from '../support/cli.js';
import { patchBlock, readBlock, restore, writeBlock } from '../thin/helpers.js';

const POOL_OK = '0 20971520 thin-pool 14 2586/25600 530/163840 - rw discard_passdown queue_if_no_space - 1024';

/**
 * A FAKE kernel, named as such: this machine has no device-mapper, so the host answers dmsetup queries from a
 * script (lines as a real dm-thin 1.22 prints them). The pool's metadata is a REAL thin_restore'd file (its
 * devices `poolIds`), named by the table as the metadata device; `reserve_metadata_snap` writes the superblock
 * copy the way dm-thin-metadata.c does (same trees, zeroed space-map roots, held_root in block 0) and
 * `release_metadata_snap` clears it. The real kernel runs the same flow in test/kernel.
 */
class FakeDmHost extends DmHost {
  calls: string[] = [];
  constructor(answer: (argv: string[]) => RunResult | null) {
    const run = async (argv: string[]): Promise<RunResult> => {
      this.calls.push(argv.join(' '));
      return answer(argv) ?? { code: 0, stdout: '', stderr: '' };
    };
    super(run);
  }
  override hasDeviceMapper(): boolean {
    return true;
  }
}

const noDevice = { code: 1, stdout: '', stderr: 'Device does not exist.\nCommand failed.' };
/** Where the fake's reserve puts the superblock copy (a free block of the 4 MiB restored file). */
const SNAP_AT = 1000;

function poolMetadata(ids: number[]): string {
  return restore({ devices: ids.map((id) => ({ id, mappings: [{ v: 0, d: id }] })) });
}

function kernel(
  opts: {
    pool?: string | null;
    active?: string[];
    failOn?: (argv: string[]) => RunResult | null;
    /** The thin ids in the pool's metadata. */
    poolIds?: number[];
  } = {},
) {
  const active = new Set(opts.active ?? []);
  let meta: string | null = null;
  const metadata = () => (meta ??= poolMetadata(opts.poolIds ?? []));
  const held = () => (meta ? readBlock(meta, 0).readUInt32LE(56) : 0);
  return new FakeDmHost((argv) => {
    const f = opts.failOn?.(argv);
    if (f) return f;
    if (argv[1] === 'status') {
      if (opts.pool === null) return noDevice;
      const line = opts.pool ?? POOL_OK.replace(' - rw ', ` ${held() || '-'} rw `);
      return { code: 0, stdout: `${line}\n`, stderr: '' };
    }
    if (argv[1] === 'table' && opts.pool !== null)
      return {
        code: 0,
        stdout: `0 20971520 thin-pool ${metadata()} /nonexistent/data 1024 32768 1 skip_block_zeroing\n`,
        stderr: '',
      };
    if (argv[1] === 'message' && argv[4] === 'reserve_metadata_snap') {
      const m = metadata();
      if (held())
        return { code: 1, stdout: '', stderr: 'device-mapper: message ioctl on pool failed: Device or resource busy' };
      const copy = readBlock(m, 0);
      copy.writeUInt32LE(SNAP_AT, 8);
      copy.fill(0, 64, 320); // the space-map roots
      writeBlock(m, SNAP_AT, copy, 'superblock');
      patchBlock(m, 0, 'superblock', (b) => b.writeUInt32LE(SNAP_AT, 56));
    }
    if (argv[1] === 'message' && argv[4] === 'release_metadata_snap') {
      if (!held())
        return { code: 1, stdout: '', stderr: 'device-mapper: message ioctl on pool failed: Invalid argument' };
      patchBlock(metadata(), 0, 'superblock', (b) => b.writeUInt32LE(0, 56));
    }
    if (argv[1] === 'info')
      return active.has(argv[2]!)
        ? { code: 0, stdout: `Name: ${argv[2]}\nState: ACTIVE\nMajor, minor: 254, 3\n`, stderr: '' }
        : noDevice;
    return null;
  });
}

function root(mutate?: (dir: string) => void): DockerRoot {
  const dir = tmpDir();
  buildV2Root(dir, {
    images: [{ name: 'busybox:latest', layers: ['b'] }],
    containers: [
      { name: 'web', image: 'busybox:latest', state: 'running' },
      { name: 'old', image: 'busybox:latest', state: 'exited' },
    ],
  });
  mutate?.(dir);
  return DockerRoot.open(dir);
}

const originOf = (r: DockerRoot, name: string) => {
  const st = fs.statSync(path.join(r.root, 'devicemapper'), { bigint: true });
  return {
    prefix: `docker-${(st.dev >> 8n) & 0xfffn}:${(st.dev & 0xffn) | ((st.dev >> 12n) & 0xfff00n)}-${st.ino}`,
    hash: sha(`mount:${name}`),
  };
};

describe('snapshot and mount plans (data)', () => {
  it('an inactive origin: create_snap above next_device_id, activate read-only with size/512 sectors', async () => {
    const r = root();
    const k = kernel();
    const res = await snapshotContainer(r, 'old', k, { stateDir: tmpDir(), dryRun: true });
    const { prefix, hash } = originOf(r, 'old');
    const next = r.recordSet().deviceSet!.nextDeviceId!;
    const originId = r.deviceRecord(hash)!.deviceId;
    expect(res.plan.split('\n').filter((l) => !l.startsWith('#'))).toEqual([
      `dmsetup message ${prefix}-pool 0 'create_snap ${next + 1} ${originId}'    # create thin snapshot ${next + 1} of device ${originId}`,
      `dmsetup create dminspect-${sha('container:old').slice(0, 12)}-${next + 1} --readonly --table '0 20971520 thin /dev/mapper/${prefix}-pool ${next + 1}'    # activate the snapshot read-only`,
    ]);
    expect(res.state).toMatchObject({
      snapId: next + 1,
      pool: `${prefix}-pool`,
      origin: { deviceId: originId, size: 10 * 1024 ** 3 },
    });
  });

  it('an active origin is suspended around create_snap and always resumed', async () => {
    const r = root();
    const { prefix, hash } = originOf(r, 'web');
    const k = kernel({ active: [`${prefix}-${hash}`] });
    const dir = path.join(tmpDir(), 'ev');
    const res = await snapshotContainer(r, 'web', k, {
      stateDir: tmpDir(),
      dryRun: true,
      dir,
      id: 500,
      name: 'case42',
    });
    const cmds = res.plan
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/ {4}#.*/, ''));
    expect(cmds).toEqual([
      `dmsetup suspend --nolockfs ${prefix}-${hash}`,
      `dmsetup message ${prefix}-pool 0 'create_snap 500 ${r.deviceRecord(hash)!.deviceId}'`,
      `dmsetup resume ${prefix}-${hash}`,
      `dmsetup create case42 --readonly --table '0 20971520 thin /dev/mapper/${prefix}-pool 500'`,
      `mkdir ${dir}`,
      `mount -t xfs -o ro,norecovery,nouuid /dev/mapper/case42 ${dir}`,
    ]);
    expect(res.rootfs).toBe(path.join(dir, 'rootfs'));
  });

  it('ext4 roots mount with ro,noload; --fs overrides', async () => {
    const r = root((d) => {
      const f = path.join(d, 'devicemapper/metadata/deviceset-metadata');
      fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), BaseDeviceFilesystem: 'ext4' }));
    });
    const res = await snapshotContainer(r, 'old', kernel(), { stateDir: tmpDir(), dryRun: true, dir: tmpDir() });
    expect(res.plan).toMatch(/mount -t ext4 -o ro,noload /);
    const res2 = await snapshotContainer(r, 'old', kernel(), {
      stateDir: tmpDir(),
      dryRun: true,
      dir: tmpDir(),
      fs: 'xfs',
    });
    expect(res2.plan).toMatch(/mount -t xfs -o ro,norecovery,nouuid /);
  });

  it('--activate-pool sets up the loop files with Docker’s table, read-only, and activates the origin read-only (no snapshot)', async () => {
    const r = root((d) => {
      fs.writeFileSync(path.join(d, 'devicemapper/devicemapper/data'), '');
      fs.truncateSync(path.join(d, 'devicemapper/devicemapper/data'), 1024 ** 3);
      fs.writeFileSync(path.join(d, 'devicemapper/devicemapper/metadata'), '');
    });
    const { prefix, hash } = originOf(r, 'old');
    const id = r.deviceRecord(hash)!.deviceId;
    const dir = path.join(tmpDir(), 'ev');
    const res = await snapshotContainer(r, 'old', kernel({ pool: null }), {
      stateDir: tmpDir(),
      dryRun: true,
      activatePool: true,
      dir,
    });
    const cmds = res.plan
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/ {4}#.*/, ''));
    const name = `dminspect-${sha('container:old').slice(0, 12)}-dev${id}`;
    expect(cmds).toEqual([
      `losetup /dev/loopA ${r.root}/devicemapper/devicemapper/data`,
      `losetup --read-only /dev/loopB ${r.root}/devicemapper/devicemapper/metadata`,
      `dmsetup create ${prefix}-pool --table '0 2097152 thin-pool /dev/loopB /dev/loopA 128 32768 2 skip_block_zeroing read_only'`,
      `dmsetup create ${name} --readonly --table '0 20971520 thin /dev/mapper/${prefix}-pool ${id}'`,
      `mkdir ${dir}`,
      `mount -t xfs -o ro,norecovery,nouuid /dev/mapper/${name} ${dir}`,
    ]);
    expect(res.plan).not.toMatch(/create_snap|suspend|delete/);
    expect(res.state.activatedPool).toEqual({ name: `${prefix}-pool`, loops: ['/dev/loopA', '/dev/loopB'] });
    expect(res.state.snapId).toBeNull();
  });
});

describe('refusals', () => {
  it.each([
    [
      'needs_check',
      '0 1 thin-pool 14 1/2 3/4 - rw discard_passdown queue_if_no_space needs_check 1024',
      /needs_check is set/,
    ],
    ['read-only', '0 1 thin-pool 14 1/2 3/4 - ro discard_passdown queue_if_no_space - 1024', /is read-only/],
    [
      'out of data space',
      '0 1 thin-pool 14 1/2 4/4 - out_of_data_space discard_passdown queue_if_no_space - 1024',
      /out of data space/,
    ],
    ['failed', '0 1 thin-pool Fail', /has failed/],
  ])('a pool that is %s', async (_w, status, msg) => {
    await expect(snapshotContainer(root(), 'old', kernel({ pool: status }), { stateDir: tmpDir() })).rejects.toThrow(
      msg,
    );
  });

  it('a pool that is not active points at --activate-pool', async () => {
    await expect(
      snapshotContainer(root(), 'old', kernel({ pool: null }), { stateDir: tmpDir() }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/not active.*--activate-pool/) });
  });

  it('a record marked deleted, unless --force', async () => {
    const r = root((d) => {
      const f = path.join(d, 'devicemapper/metadata', sha('mount:old'));
      fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), deleted: true }));
    });
    await expect(snapshotContainer(r, 'old', kernel(), { stateDir: tmpDir(), dryRun: true })).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringMatching(/marked deleted.*--force/),
    });
    await expect(
      snapshotContainer(r, 'old', kernel(), { stateDir: tmpDir(), dryRun: true, force: true }),
    ).resolves.toBeTruthy();
  });

  it('a snapshot name taken, a mount point not empty, an --id Docker uses', async () => {
    const r = root();
    await expect(
      snapshotContainer(r, 'old', kernel({ active: ['taken'] }), { stateDir: tmpDir(), name: 'taken' }),
    ).rejects.toThrow(/snapshot name taken/);
    const full = tmpDir();
    fs.writeFileSync(path.join(full, 'x'), '');
    await expect(
      snapshotContainer(r, 'old', kernel(), { stateDir: tmpDir(), dir: full, dryRun: true }),
    ).rejects.toThrow(/mount point is not empty/);
    await expect(snapshotContainer(r, 'old', kernel(), { stateDir: tmpDir(), id: 1, dryRun: true })).rejects.toThrow(
      /--id 1 is used by a Docker device record/,
    );
    await expect(
      snapshotContainer(r, 'old', kernel(), { stateDir: tmpDir(), name: '../x', dryRun: true }),
    ).rejects.toThrow(/invalid snapshot name/);
  });

  it('the container’s device missing from the pool (create_snap: No data available)', async () => {
    const k = kernel({
      failOn: (a) =>
        a[4]?.startsWith('create_snap')
          ? { code: 1, stdout: '', stderr: 'device-mapper: message ioctl on pool failed: No data available' }
          : null,
    });
    await expect(snapshotContainer(root(), 'old', k, { stateDir: tmpDir() })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringMatching(/is not in pool/),
    });
  });

  it('not root, without --dry-run: exit 7 with one line', () => {
    const r = spawnCli(['snapshot', 'web', '--root', SAMPLE], { uid: 65534 });
    expect(r.code).toBe(7);
    expect(r.stderr.trim()).toBe(
      'dminspect: snapshot needs root privileges (device-mapper and mount); run with sudo, or use --dry-run to see the commands',
    );
  });

  it('no device-mapper in the kernel: exit 8', async () => {
    if (fs.readFileSync('/proc/misc', 'utf8').includes('device-mapper')) return;
    const r = await cli('mount', 'web', tmpDir(), '--root', SAMPLE);
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(/no device-mapper/);
  });
});

describe('executing (fake kernel) and releasing', () => {
  it('an id taken after the held read (create_snap: File exists): retries with the next id, as Docker does', async () => {
    const r = root();
    const next = r.recordSet().deviceSet!.nextDeviceId!;
    const k = kernel({
      failOn: (a) =>
        a[4]?.startsWith(`create_snap ${next + 1} `)
          ? { code: 1, stdout: '', stderr: 'device-mapper: message ioctl on pool failed: File exists' }
          : null,
    });
    const stateDir = tmpDir();
    const res = await snapshotContainer(r, 'old', k, { stateDir });
    expect(res.state.snapId).toBe(next + 2);
    expect(k.calls.filter((c) => c.includes('create_snap'))).toEqual([
      expect.stringContaining(`create_snap ${next + 1} `),
      expect.stringContaining(`create_snap ${next + 2} `),
    ]);
    expect(listStates(stateDir).map((s) => s.snapId)).toEqual([next + 2]);
  });

  it('ids in the pool but in no record (the held metadata snapshot) are skipped up front; the hold is released', async () => {
    const r = root();
    const next = r.recordSet().deviceSet!.nextDeviceId!;
    const k = kernel({ poolIds: [1, next + 1, next + 2, next + 4] });
    const stateDir = tmpDir();
    const res = await snapshotContainer(r, 'old', k, { stateDir });
    expect(res.state.snapId).toBe(next + 3);
    expect(k.calls.filter((c) => c.includes('create_snap'))).toEqual([
      expect.stringContaining(`create_snap ${next + 3} `),
    ]);
    const pool = res.state.pool;
    const reserve = k.calls.indexOf(`dmsetup message ${pool} 0 reserve_metadata_snap`);
    const release = k.calls.indexOf(`dmsetup message ${pool} 0 release_metadata_snap`);
    const snap = k.calls.findIndex((c) => c.includes('create_snap'));
    expect(reserve).toBeGreaterThan(-1);
    expect(release).toBeGreaterThan(reserve);
    expect(snap).toBeGreaterThan(release); // nothing is held while dminspect changes the pool
    expect(fs.readdirSync(stateDir).filter((f) => f.endsWith('.hold'))).toEqual([]);
    // --id the pool has: refused before anything is made
    const k2 = kernel({ poolIds: [next + 7] });
    await expect(snapshotContainer(r, 'old', k2, { stateDir: tmpDir(), id: next + 7 })).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringMatching(new RegExp(`--id ${next + 7} is a thin device in pool`)),
    });
    expect(k2.calls.filter((c) => c.includes('create_snap'))).toEqual([]);
    // a dry run holds nothing (holding is a change): it shows the id from Docker's records
    const k3 = kernel({ poolIds: [next + 1] });
    const dry = await snapshotContainer(r, 'old', k3, { stateDir: tmpDir(), dryRun: true });
    expect(dry.state.snapId).toBe(next + 1);
    expect(k3.calls.filter((c) => c.includes('metadata_snap'))).toEqual([]);
  });

  it('built code (dist/): the pool ids are read in the worker thread the same way', async () => {
    const built = (await import(
      pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/forensics/live.js')).href
    )) as typeof import('../../src/forensics/live.js');
    const r = root();
    const next = r.recordSet().deviceSet!.nextDeviceId!;
    const k = kernel({ poolIds: [next + 1, next + 3] });
    const res = await built.snapshotContainer(r, 'old', k, { stateDir: tmpDir() });
    expect(res.state.snapId).toBe(next + 2);
    expect(k.calls.filter((c) => c.includes('metadata_snap'))).toHaveLength(2);
  });

  it('release undoes everything the state records, and is idempotent', async () => {
    const k = kernel();
    const stateDir = tmpDir();
    const dir = path.join(tmpDir(), 'ev');
    const res = await snapshotContainer(root(), 'old', k, { stateDir, dir });
    expect(k.calls.at(-1)).toBe(`mount -t xfs -o ro,norecovery,nouuid /dev/mapper/${res.state.name} ${dir}`);
    k.calls.length = 0;
    const rel = await releaseSnapshot(dir, k, { stateDir });
    expect(rel.released).toBe(true);
    expect(k.calls).toEqual([
      `umount ${dir}`,
      `rmdir ${dir}`,
      `dmsetup remove ${res.state.name}`,
      `dmsetup message ${res.state.pool} 0 delete ${res.state.snapId}`,
    ]);
    expect(listStates(stateDir)).toEqual([]);
    expect((await releaseSnapshot(dir, k, { stateDir })).released).toBe(false);
  });

  it('release of a read-only activation: no thin id to delete; the pool and its loops come down', () => {
    const plan = releasePlan({
      mountPoint: '/m',
      madeMountPoint: false,
      snapName: 'dminspect-x-dev4',
      pool: 'p',
      snapId: null,
      activatedPool: { name: 'p', loops: ['/dev/loop3', '/dev/loop4'] },
      imageLoop: null,
    });
    expect(plan.steps.map((st) => st.argv.join(' '))).toEqual([
      'umount /m',
      'dmsetup remove dminspect-x-dev4',
      'dmsetup remove p',
      'losetup -d /dev/loop3',
      'losetup -d /dev/loop4',
    ]);
  });

  it('release --root refuses what was made for another root; snapshots --root lists only that root’s', async () => {
    const k = kernel();
    const stateDir = tmpDir();
    const r = root();
    const res = await snapshotContainer(r, 'old', k, { stateDir });
    await expect(releaseSnapshot(res.state.name, k, { stateDir, root: '/elsewhere' })).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringMatching(/made for the Docker root .* not released/),
    });
    expect(listStates(stateDir)).toHaveLength(1);
    const mine = await cliJson('snapshots', '--state-dir', stateDir, '--root', r.root);
    expect(mine.snapshots.map((x: { name: string }) => x.name)).toEqual([res.state.name]);
    expect((await cliJson('snapshots', '--state-dir', stateDir, '--root', '/elsewhere')).snapshots).toEqual([]);
    expect((await cliJson('snapshots', '--state-dir', stateDir)).snapshots).toHaveLength(1);
    await expect(releaseSnapshot(res.state.name, k, { stateDir, root: r.root })).resolves.toMatchObject({
      released: true,
    });
  });

  it('release goes on when parts are already gone', async () => {
    const gone = kernel({
      failOn: (a) =>
        a[0] === 'umount'
          ? { code: 32, stdout: '', stderr: 'umount: /x: not mounted.' }
          : a[1] === 'remove'
            ? { code: 1, stdout: '', stderr: 'device-mapper: remove ioctl on s failed: No such device or address' }
            : a[4]?.startsWith('delete')
              ? { code: 1, stdout: '', stderr: 'message ioctl failed: No data available' }
              : null,
    });
    const stateDir = tmpDir();
    const ok = kernel();
    await snapshotContainer(root(), 'old', ok, { stateDir, dir: path.join(tmpDir(), 'm') });
    const st = listStates(stateDir)[0]!;
    await expect(releaseSnapshot(st.name, gone, { stateDir })).resolves.toMatchObject({ released: true });
  });
});

describe('the snapshot id (real thin_restore metadata)', () => {
  it('poolThinIds reads the device ids of the live trees, or of the held snapshot', () => {
    const meta = poolMetadata([1, 2, 5, 9]);
    expect([...poolThinIds(meta, false)].sort((a, b) => a - b)).toEqual([1, 2, 5, 9]);
    expect(() => poolThinIds(meta, true)).toThrow(DmiError); // nothing held
    const copy = readBlock(meta, 0);
    copy.writeUInt32LE(SNAP_AT, 8);
    copy.fill(0, 64, 320);
    writeBlock(meta, SNAP_AT, copy, 'superblock');
    patchBlock(meta, 0, 'superblock', (b) => b.writeUInt32LE(SNAP_AT, 56));
    expect([...poolThinIds(meta, true)].sort((a, b) => a - b)).toEqual([1, 2, 5, 9]);
  });

  it('pickSnapId: above next_device_id and every record, skipping the pool’s ids', () => {
    const poolIds = poolThinIds(poolMetadata([1, 2, 5, 6, 8]), false);
    expect(pickSnapId({ recordIds: [1, 2], poolIds, nextDeviceId: 4 })).toBe(7);
    expect(pickSnapId({ recordIds: [1, 2], poolIds: [], nextDeviceId: 4 })).toBe(5);
    expect(pickSnapId({ recordIds: [1, 9], poolIds, nextDeviceId: 4 })).toBe(10);
    expect(pickSnapId({ recordIds: [], poolIds, nextDeviceId: null })).toBe(3);
    expect(() => pickSnapId({ recordIds: [], poolIds: [], nextDeviceId: 0xffffff })).toThrow(
      /no free 24-bit thin device id/,
    );
  });
});
