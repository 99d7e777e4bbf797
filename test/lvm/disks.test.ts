/**
 * Real LVM disks written by the LVM tools on loop devices (activation off: no device-mapper here), read
 * offline by src/lvm and src/inspect/lvm-pool, compared with LVM's own reports. A Docker direct-lvm thin pool
 * is restored with vgcfgrestore (lvcreate cannot make one without device-mapper), its _tmeta filled with real
 * thin metadata from thin_restore, and read through the extent map.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliJson } from '../support/cli.js';
import { register } from '../../src/cli/commands/lvm.js';
import { EXIT_CODES, isDmiError } from '../../src/errors.js';
import { checkLvmPool, lvmListing } from '../../src/audit/lvm.js';
import { findThinPool, locateLvmPool, openLvmPoolMetadata } from '../../src/pool-source/lvm.js';
import { locateLv, parseLvmText, readVolumeGroup, scanImages } from '../../src/lvm/index.js';
import { ExtentMap } from '../../src/io/extents.js';
import { openPool } from '../../src/thin/index.js';
import { hasThinTools, restore, thinLs, type PoolSpec } from '../thin/helpers.js';
import { removeTmp as removeThinTmp } from '../thin/helpers.js';
import {
  attach,
  detachAll,
  flip,
  removeTmp,
  hasLvm,
  hasSfdisk,
  linear,
  LVM_SKIP,
  lvm,
  pvsJson,
  restoreVg,
  rewriteMetadata,
  sh,
  sha256,
  sparse,
  tmp,
  vgBackup,
  withLvs,
  writeAt,
} from './helpers.js';

if (!hasLvm) console.warn(LVM_SKIP);
const MiB = 1024 * 1024;
const SEG_FIELDS = 'lv_name,lv_size,seg_start_pe,seg_size_pe,segtype,seg_pe_ranges,stripes,stripe_size';

interface Made {
  images: Record<string, string>;
  /** image path → its loop device (whole disk or partition) and the PV's byte offset in the image. */
  pvOf: Map<string, { image: string; start: number }>;
  reports: Record<string, { segs: Record<string, string>[]; pvs: Record<string, string>[]; backup: string }>;
}

const made: Made = { images: {}, pvOf: new Map(), reports: {} };
let dir = '';

function report(vg: string, devs: string[]): void {
  const out = lvm(
    devs,
    'lvs',
    '-a',
    '--segments',
    '--reportformat',
    'json',
    '--units',
    'b',
    '--nosuffix',
    '-o',
    SEG_FIELDS,
    vg,
  );
  made.reports[vg] = {
    segs: JSON.parse(out).report[0].seg,
    pvs: pvsJson(devs, 'pv_name,pv_uuid,pe_start,pv_pe_count,dev_size,vg_name'),
    backup: vgBackup(devs, vg),
  };
}

/** LVM's answer for where each segment of vg's LVs is: image byte ranges from seg_pe_ranges + pe_start. */
function lvmRanges(vg: string): Map<string, { image: string; offset: number; length: number }[]> {
  const r = made.reports[vg]!;
  const extentBytes = Number(/extent_size = (\d+)/.exec(r.backup)![1]) * 512;
  const out = new Map<string, { image: string; offset: number; length: number }[]>();
  for (const s of r.segs) {
    const name = s.lv_name!.replace(/^\[|\]$/g, '');
    if (!s.seg_pe_ranges || !s.seg_pe_ranges.startsWith('/dev/')) continue;
    for (const range of s.seg_pe_ranges.split(' ')) {
      const m = /^(.+):(\d+)-(\d+)$/.exec(range)!;
      const pv = made.pvOf.get(m[1]!)!;
      const peStart = Number(r.pvs.find((p) => p.pv_name === m[1])!.pe_start);
      const list = out.get(name) ?? [];
      list.push({
        image: pv.image,
        offset: pv.start + peStart + Number(m[2]) * extentBytes,
        length: (Number(m[3]) - Number(m[2]) + 1) * extentBytes,
      });
      out.set(name, list);
    }
  }
  return out;
}

function pvDisk(name: string, bytes: number, table?: string): { image: string; dev: string; start: number } {
  const image = sparse(path.join(dir, name), bytes);
  let start = 0;
  let size = bytes;
  if (table) {
    sh('sfdisk', ['--quiet', image], table);
    const parts = JSON.parse(sh('sfdisk', ['--json', image])).partitiontable.partitions as {
      start: number;
      size: number;
      type: string;
    }[];
    const last = parts[parts.length - 1]!;
    start = last.start * 512;
    size = last.size * 512;
  }
  const dev = attach(image, table ? { offset: start, size } : undefined);
  made.pvOf.set(dev, { image, start });
  lvm([dev], 'pvcreate', '-ff', '-y', dev);
  made.images[name] = image;
  return { image, dev, start };
}

const SPEC: PoolSpec = {
  transaction: 5,
  dataBlockSize: 1024,
  nrDataBlocks: 32,
  devices: [
    {
      id: 1,
      mappings: [
        { v: 0, d: 0, len: 4 },
        { v: 10, d: 7 },
      ],
    },
    {
      id: 2,
      mappings: [
        { v: 0, d: 0, len: 2 },
        { v: 3, d: 9, len: 3 },
      ],
    },
  ],
};

/** The Docker direct-lvm layout (VG docker, LV thinpool), restored by vgcfgrestore; tmeta in two segments. */
function thinPoolText(backup: string, txn: number, tmetaAt: [number, number] = [40, 2]): string {
  return withLvs(backup, [
    {
      name: 'thinpool',
      segments: [
        {
          extents: 16,
          body: `type = "thin-pool"\nmetadata = "thinpool_tmeta"\npool = "thinpool_tdata"\ntransaction_id = ${txn}\nchunk_size = 1024\ndiscards = "passdown"\nzero_new_blocks = 0`,
        },
      ],
    },
    { name: 'lvol0_pmspare', visible: false, segments: [{ extents: 4, body: linear('pv0', 50) }] },
    {
      name: 'thinpool_tmeta',
      visible: false,
      segments: [
        { extents: 2, body: linear('pv0', tmetaAt[0]) },
        { extents: 2, body: linear('pv0', tmetaAt[1]) },
      ],
    },
    {
      name: 'thinpool_tdata',
      visible: false,
      segments: [
        { extents: 10, body: linear('pv0', 8) },
        { extents: 6, body: linear('pv0', 30) },
      ],
    },
  ]);
}

let plainMeta = '';

/** Runs `dminspect lvm …` through its register() as main.ts does (exit statuses of DmiError codes). */
async function runLvm(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io = { out: (x: string) => (stdout += `${x}\n`), err: (x: string) => (stderr += `${x}\n`) };
  const program = new Command('dminspect').exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
  register(program, io);
  for (const c of program.commands) c.exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
  try {
    await program.parseAsync(['node', 'dminspect', ...args]);
    return { code: 0, stdout, stderr };
  } catch (e) {
    if (e instanceof CommanderError) return { code: EXIT_CODES.USAGE, stdout, stderr };
    if (isDmiError(e)) return { code: e.exitCode, stdout, stderr: `${stderr}dminspect: ${e.message}\n` };
    throw e;
  }
}

describe.skipIf(!hasLvm || !hasSfdisk)('real LVM disks (pvcreate/vgcreate/lvcreate on loop devices)', () => {
  beforeAll(() => {
    dir = tmp();
    // A: whole-disk PV, one VG, a two-segment LV.
    const a = pvDisk('whole.img', 64 * MiB);
    lvm([a.dev], 'vgcreate', '-s', '1M', 'dmiwhole', a.dev);
    lvm([a.dev], 'lvcreate', '-an', '-Zn', '-L', '3M', '-n', 'lin', 'dmiwhole');
    lvm([a.dev], 'lvcreate', '-an', '-Zn', '-L', '2M', '-n', 'other-lv', 'dmiwhole');
    lvm([a.dev], 'lvextend', '-L', '+5M', 'dmiwhole/lin');
    report('dmiwhole', [a.dev]);
    // B: MBR-partitioned disk, PV in partition 2.
    const b = pvDisk('mbr.img', 48 * MiB, 'label: dos\nstart=2048, size=16384, type=83\nstart=18432, type=8e\n');
    lvm([b.dev], 'vgcreate', '-s', '1M', 'dmimbr', b.dev);
    lvm([b.dev], 'lvcreate', '-an', '-Zn', '-L', '4M', '-n', 'lv', 'dmimbr');
    report('dmimbr', [b.dev]);
    // C: GPT disk.
    const c = pvDisk(
      'gpt.img',
      48 * MiB,
      'label: gpt\nstart=2048, size=8192, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nstart=10240, size=61440, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n',
    );
    lvm([c.dev], 'vgcreate', '-s', '1M', 'dmigpt', c.dev);
    lvm([c.dev], 'lvcreate', '-an', '-Zn', '-L', '6M', '-n', 'lv', 'dmigpt');
    report('dmigpt', [c.dev]);
    // D: a VG on two disks: a striped LV and a linear LV spanning both PVs.
    const d1 = pvDisk('two-1.img', 32 * MiB);
    const d2 = pvDisk('two-2.img', 32 * MiB);
    lvm([d1.dev, d2.dev], 'vgcreate', '-s', '1M', 'dmitwo', d1.dev, d2.dev);
    lvm([d1.dev, d2.dev], 'lvcreate', '-an', '-Zn', '-i', '2', '-I', '64k', '-L', '8M', '-n', 'striped', 'dmitwo');
    lvm([d1.dev, d2.dev], 'lvcreate', '-an', '-Zn', '-L', '40M', '-n', 'span', 'dmitwo');
    report('dmitwo', [d1.dev, d2.dev]);
    // E: Docker direct-lvm: VG docker, thin pool docker/thinpool with hidden _tmeta/_tdata.
    const e = pvDisk('docker.img', 64 * MiB);
    lvm([e.dev], 'vgcreate', '-s', '1M', 'docker', e.dev);
    restoreVg([e.dev], 'docker', thinPoolText(vgBackup([e.dev], 'docker'), 0));
    report('docker', [e.dev]);
    if (hasThinTools) {
      plainMeta = restore(SPEC, 4 * MiB);
      const body = fs.readFileSync(plainMeta);
      let at = 0;
      for (const r of lvmRanges('docker').get('thinpool_tmeta')!) {
        writeAt(r.image, r.offset, body.subarray(at, at + r.length));
        at += r.length;
      }
    }
    detachAll();
  }, 120_000);

  afterAll(() => {
    detachAll();
    removeTmp();
    removeThinTmp();
  });

  it('finds PVs (whole disk, MBR partition, GPT partition) as pvs reports them', () => {
    for (const [name, vg] of [
      ['whole.img', 'dmiwhole'],
      ['mbr.img', 'dmimbr'],
      ['gpt.img', 'dmigpt'],
    ] as const) {
      const s = scanImages([made.images[name]!]);
      const ref = made.reports[vg]!.pvs[0]!;
      expect(s.pvs).toHaveLength(1);
      const pv = s.pvs[0]!;
      expect(pv.label.uuid).toBe(ref.pv_uuid);
      expect(pv.label.deviceSize).toBe(Number(ref.dev_size));
      expect(pv.start).toBe(made.pvOf.get(ref.pv_name!)!.start);
      expect(pv.partition?.number ?? null).toBe(name === 'whole.img' ? null : 2);
      expect(s.vgs.map((v) => v.vg.name)).toEqual([vg]);
      const vgpv = s.vgs[0]!.vg.pvs[0]!;
      expect(vgpv.peStart * 512).toBe(Number(ref.pe_start));
      expect(vgpv.peCount).toBe(Number(ref.pv_pe_count));
      expect(s.problems).toEqual([]);
    }
  });

  it('parses the on-disk text as vgcfgbackup shows it and maps every LV segment where lvs says it is', () => {
    for (const [vg, imgs] of [
      ['dmiwhole', ['whole.img']],
      ['dmimbr', ['mbr.img']],
      ['dmigpt', ['gpt.img']],
      ['dmitwo', ['two-1.img', 'two-2.img']],
      ['docker', ['docker.img']],
    ] as const) {
      const l = lvmListing(imgs.map((i) => made.images[i]!));
      const v = l.vgs.find((x) => x.name === vg)!;
      // Same LVs and segments as lvs -a --segments.
      const segs = made.reports[vg]!.segs;
      expect(
        v.lvs
          .flatMap((lv) =>
            lv.segments.map((s) => `${lv.visible ? lv.name : `[${lv.name}]`} ${s.startExtent}+${s.extentCount}`),
          )
          .sort(),
      ).toEqual(segs.map((s) => `${s.lv_name} ${s.seg_start_pe}+${s.seg_size_pe}`).sort());
      for (const lv of v.lvs)
        expect(lv.sizeBytes, lv.name).toBe(
          Number(segs.find((s) => s.lv_name!.replace(/^\[|\]$/g, '') === lv.name)!.lv_size),
        );
      // Linear / striped areas at the image bytes LVM's seg_pe_ranges + pe_start give.
      const ref = lvmRanges(vg);
      for (const lv of v.lvs) {
        const mine = lv.segments.flatMap((s) =>
          s.stripes.map((st) => ({
            image: st.image!,
            offset: st.offset!,
            length: (s.extentCount / s.stripes.length) * v.extentBytes,
          })),
        );
        if (mine.length) expect(mine, `${vg}/${lv.name}`).toEqual(ref.get(lv.name));
      }
    }
  });

  it('a VG on two disks: the striped LV interleaves 64 KiB chunks across both images; the spanning LV crosses from one to the other', () => {
    const s = scanImages([made.images['two-2.img']!, made.images['two-1.img']!]);
    const svg = s.vgs[0]!;
    const striped = locateLv(svg, 'striped');
    expect(striped.length).toBe(8 * MiB);
    expect(striped.extents).toHaveLength((8 * MiB) / (64 * 1024));
    const ref = lvmRanges('dmitwo').get('striped')!;
    expect(striped.extents[0]).toMatchObject({
      path: ref[0]!.image,
      offset: ref[0]!.offset,
      length: 65536,
      lvOffset: 0,
    });
    expect(striped.extents[1]).toMatchObject({
      path: ref[1]!.image,
      offset: ref[1]!.offset,
      length: 65536,
      lvOffset: 65536,
    });
    expect(striped.extents[2]).toMatchObject({ path: ref[0]!.image, offset: ref[0]!.offset + 65536, lvOffset: 131072 });
    const span = locateLv(svg, 'span');
    expect(span.extents.map(({ path: p, offset, length }) => ({ image: p, offset, length }))).toEqual(
      lvmRanges('dmitwo').get('span'),
    );
    expect(new Set(span.extents.map((e) => e.path)).size).toBe(2);
    // One image alone: the VG is there, the other PV is missing.
    const one = scanImages([made.images['two-1.img']!]);
    expect(one.problems.map((p) => p.kind)).toContain('missing-pv');
    expect(() => locateLv(one.vgs[0]!, 'span')).toThrow(
      /which none of the images holds: add that disk with another --image/,
    );
  });

  it.skipIf(!hasThinTools)(
    "Docker's direct-lvm pool: _tmeta read through its extents gives what thin_ls gives on the plain metadata file",
    () => {
      const img = made.images['docker.img']!;
      const before = sha256(img);
      const { pool, findings } = locateLvmPool([img], { pool: 'docker-thinpool' });
      expect(findings).toEqual([]);
      expect(pool).toMatchObject({
        vg: 'docker',
        lv: 'thinpool',
        dmName: 'docker-thinpool',
        transactionId: 0,
        chunkSizeSectors: 1024,
        chunkSizeBytes: 512 * 1024,
        zeroNewBlocks: false,
        discards: 'passdown',
        metadataLv: 'thinpool_tmeta',
        dataLv: 'thinpool_tdata',
      });
      expect(pool.metadata!.extents.map(({ path: p, offset, length }) => ({ image: p, offset, length }))).toEqual(
        lvmRanges('docker').get('thinpool_tmeta'),
      );
      expect(pool.metadata!.extents).toHaveLength(2);
      expect(pool.data!.extents.map(({ path: p, offset, length }) => ({ image: p, offset, length }))).toEqual(
        lvmRanges('docker').get('thinpool_tdata'),
      );
      const thin = openLvmPoolMetadata(pool);
      const ref = thinLs(plainMeta);
      const usage = thin.usage();
      expect([...usage.keys()].sort()).toEqual([...ref.keys()].sort());
      for (const [id, u] of usage)
        expect({ mapped: u.mapped, exclusive: u.exclusive, shared: u.shared }).toEqual({
          mapped: ref.get(id)!.mapped,
          exclusive: ref.get(id)!.exclusive,
          shared: ref.get(id)!.shared,
        });
      expect(thin.superblock.transactionId).toBe(5);
      expect(thin.path).toBe(`${img}: docker/thinpool_tmeta`);
      const plain = openPool(plainMeta);
      expect(thin.spaceMaps()).toEqual(plain.spaceMaps());
      expect([...thin.mappingRuns(2)]).toEqual([...plain.mappingRuns(2)]);
      plain.close();
      thin.close();
      // LVM records 0 (as Docker's direct-lvm setup leaves it): LVM does not check, only an info finding.
      const check = checkLvmPool(scanImages([img]).vgs[0]!, 'thinpool');
      expect(check.superblock).toMatchObject({ transactionId: 5, dataBlockSectors: 1024, thinDevices: 2 });
      expect(check.findings.map((f) => [f.kind, f.severity])).toEqual([['transaction-id-unchecked', 'info']]);
      // The data LV: logical byte x of _tdata is where LVM's ranges say.
      const map = new ExtentMap(pool.data!.extents);
      const x = 10 * MiB + 12345;
      const [piece] = [...map.pieces(x, 100)];
      const second = lvmRanges('docker').get('thinpool_tdata')![1]!;
      expect(piece).toMatchObject({ path: img, offset: second.offset + (x - 10 * MiB), length: 100 });
      expect(sha256(img)).toBe(before);
    },
  );

  it.skipIf(!hasThinTools)(
    'dminspect pool --image: the direct-lvm pool audited offline, numbers as thin_ls, LVM facts and findings',
    async () => {
      const img = made.images['docker.img']!;
      const before = sha256(img);
      const r = await cliJson('pool', '--image', img, '--sort', 'id');
      const ref = thinLs(plainMeta);
      expect(r.lvm).toMatchObject({
        vg: 'docker',
        lv: 'thinpool',
        dmName: 'docker-thinpool',
        transactionId: 0,
        chunkSizeBytes: 512 * 1024,
      });
      expect(r.poolName).toBe('docker-thinpool');
      expect(r.metadataFile).toBe(`${img}: docker/thinpool_tmeta`);
      expect(r.transactionId).toBe(5);
      expect(
        r.devices.map(
          (d: { deviceId: number; mappedBlocks: number; exclusiveBlocks: number; sharedBlocks: number }) => [
            d.deviceId,
            d.mappedBlocks,
            d.exclusiveBlocks,
            d.sharedBlocks,
          ],
        ),
      ).toEqual(
        [...ref.keys()]
          .sort((a, b) => a - b)
          .map((id) => [id, ref.get(id)!.mapped, ref.get(id)!.exclusive, ref.get(id)!.shared]),
      );
      expect(r.findings.map((f: { kind: string }) => f.kind)).toContain('transaction-id-unchecked');
      const lv = await cliJson('lvm', '--image', img, '--pool', 'docker-thinpool');
      expect(lv.dockerPool).toEqual({ name: 'docker-thinpool', source: 'option', found: true });
      const other = await cliJson('lvm', '--image', img, '--pool', 'vg0-pool');
      expect(other.dockerPool).toMatchObject({ name: 'vg0-pool', found: false });
      expect(other.findings.map((f: { kind: string }) => f.kind)).toContain('docker-pool-not-found');
      const t = await cli('pool', '--image', img);
      expect(t.stdout).toMatch(
        /^lvm: +docker\/thinpool \(thinpool_tmeta, thinpool_tdata\); LVM transaction_id 0, chunk 512 KiB$/m,
      );
      expect(sha256(img)).toBe(before);
    },
  );

  it.skipIf(!hasThinTools)(
    'LVM transaction_id 3 against the superblock\'s 5: "Thin pool … transaction_id is 5, while expected 3"',
    () => {
      const img = path.join(dir, 'txn.img');
      fs.copyFileSync(made.images['docker.img']!, img);
      const dev = attach(img);
      restoreVg(
        [dev],
        'docker',
        thinPoolText(made.reports.docker!.backup.replace(/\tlogical_volumes \{[\s\S]*\n\t\}\n/, ''), 3),
      );
      detachAll();
      const l = lvmListing([img]);
      const f = l.findings.find((x) => x.kind === 'transaction-id-mismatch')!;
      expect(f.severity).toBe('critical');
      expect(f.message).toMatch(/^Thin pool docker-thinpool transaction_id is 5, while expected 3/);
      expect(l.thinPools[0]!.pool.transactionId).toBe(3);
    },
  );

  it('several thin pools: no name is AMBIGUOUS listing them; a name picks one', () => {
    const img = path.join(dir, 'two-pools.img');
    fs.copyFileSync(made.images['docker.img']!, img);
    const dev = attach(img);
    const text = thinPoolText(made.reports.docker!.backup, 0).replace(
      /\n\t\}\n\}\n$/,
      `\n\t\tpool2 {\n\t\t\tid = "Zzzzzz-aaaa-bbbb-cccc-dddd-eeee-ffffff"\n\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]\n\t\t\tflags = []\n\t\t\tsegment_count = 1\n\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 1\n\t\t\t\ttype = "thin-pool"\n\t\t\t\tmetadata = "p2_tmeta"\n\t\t\t\tpool = "p2_tdata"\n\t\t\t\ttransaction_id = 0\n\t\t\t\tchunk_size = 128\n\t\t\t}\n\t\t}\n${['p2_tmeta', 'p2_tdata'].map((n, i) => `\t\t${n} {\n\t\t\tid = "Zzzzz${i}-aaaa-bbbb-cccc-dddd-eeee-ffffff"\n\t\t\tstatus = ["READ", "WRITE"]\n\t\t\tflags = []\n\t\t\tsegment_count = 1\n\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 1\n\t\t\t\ttype = "striped"\n\t\t\t\tstripe_count = 1\n\t\t\t\tstripes = ["pv0", ${56 + i}]\n\t\t\t}\n\t\t}\n`).join('')}\t}\n}\n`,
    );
    restoreVg([dev], 'docker', text);
    detachAll();
    const s = scanImages([img]);
    expect(() => findThinPool(s)).toThrow(
      /2 thin pools: docker-thinpool \(docker\/thinpool\), docker-pool2 \(docker\/pool2\); name one with --pool/,
    );
    expect(findThinPool(s, { pool: '/dev/mapper/docker-pool2' }).lv).toBe('pool2');
    expect(findThinPool(s, { pool: 'docker/thinpool' }).lv).toBe('thinpool');
    expect(() => findThinPool(s, { pool: 'docker-lvol0_pmspare' })).toThrow(/is not a thin pool/);
    expect(() => findThinPool(s, { pool: 'other-thinpool' })).toThrow(/no volume group "other"/);
  });

  it('the text LVM wrote on disk parses to the same model as its vgcfgbackup', () => {
    for (const [vg, img] of [
      ['docker', 'docker.img'],
      ['dmiwhole', 'whole.img'],
      ['dmitwo', 'two-1.img'],
    ] as const) {
      const fromBackup = readVolumeGroup(parseLvmText(made.reports[vg]!.backup));
      const fromDisk = scanImages([made.images[img]!]).vgs[0]!.vg;
      const strip = (v: typeof fromDisk) => ({ ...v, creationTime: null, creationHost: null, description: null });
      expect(strip(fromDisk)).toEqual(strip(fromBackup));
    }
  });

  it.skipIf(!hasThinTools)(
    'dminspect lvm --image: VGs, PVs, LVs with extents, the thin pool with both transaction ids; --json; read-only',
    async () => {
      const imgs = [
        made.images['docker.img']!,
        made.images['two-1.img']!,
        made.images['two-2.img']!,
        made.images['mbr.img']!,
      ];
      const before = imgs.map(sha256);
      const r = await runLvm('lvm', ...imgs.flatMap((i) => ['--image', i]));
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/volume group: +docker \(/);
      expect(r.stdout).toMatch(/\[thinpool_tmeta\] +4 MiB +segment1 +0\+2 +linear +pv0:40-41 @\d+/);
      expect(r.stdout).toMatch(/thin pool: +docker\/thinpool \(dm name docker-thinpool\)/);
      expect(r.stdout).toMatch(/transaction id: +LVM 0, superblock 5/);
      expect(r.stdout).toMatch(/mbr\.img \(partition 2\)/);
      expect(r.stdout).toMatch(/volume group: +dmitwo/);
      expect(r.stdout).toMatch(/INFO +LVM records transaction_id 0/);
      const j = JSON.parse((await runLvm('lvm', '--json', ...imgs.flatMap((i) => ['--image', i]))).stdout);
      expect(j.vgs.map((v: any) => v.name)).toEqual(['dmimbr', 'dmitwo', 'docker']);
      expect(j.thinPools[0].pool).toMatchObject({ dmName: 'docker-thinpool', transactionId: 0 });
      expect(j.thinPools[0].superblock.transactionId).toBe(5);
      expect(imgs.map(sha256)).toEqual(before);
      const bad = await runLvm('lvm', '--image', path.join(dir, 'missing.img'));
      expect(bad.code).toBe(EXIT_CODES.NOT_FOUND);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
      expect((await runLvm('lvm')).code).toBe(EXIT_CODES.USAGE);
    },
  );

  describe('bad input: one clear line or a finding; images never written', () => {
    const copy = (name: string, as: string): string => {
      const p = path.join(dir, as);
      fs.copyFileSync(made.images[name]!, p);
      return p;
    };

    it('a truncated image: the cut LVs are findings, locating the pool fails naming the truncation', () => {
      const img = copy('docker.img', 'trunc.img');
      fs.truncateSync(img, 20 * MiB);
      const h = sha256(img);
      const l = lvmListing([img]);
      expect(l.findings.map((f) => f.kind)).toEqual(
        expect.arrayContaining(['image-truncated', 'segment-past-image-end', 'pool-lv-unmappable']),
      );
      expect(
        l.findings.find((f) => f.kind === 'segment-past-image-end' && f.evidence.lv === 'thinpool_tmeta')!.message,
      ).toMatch(
        /LV docker\/thinpool_tmeta segment1: extents 40\.\.41 of pv0 end at byte .* past its end .*: truncated acquisition/,
      );
      expect(() => locateLvmPool([img])).toThrow(/thinpool_tmeta segment1: .* past its end .*truncated acquisition/);
      expect(sha256(img)).toBe(h);
      fs.truncateSync(img, 8192);
      expect(() => scanImages([img])).toThrow(
        /metadata area 1 of PV .*: the area \(1,044,480 bytes\) runs past the end of the image: truncated image\?$/,
      );
    });

    it('a corrupt label, a corrupt metadata area header', () => {
      const a = copy('whole.img', 'label.img');
      flip(a, 512 + 40);
      expect(() => scanImages([a])).toThrow(
        /label\.img: LVM label in sector 1: checksum mismatch \(label says 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\): corrupt label$/,
      );
      const b = copy('whole.img', 'mdah.img');
      flip(b, 4096 + 30);
      expect(() => scanImages([b])).toThrow(
        /mdah\.img: metadata area 1 of PV .* \(byte 4,096\): checksum mismatch .*: corrupt metadata area header/,
      );
      const c = copy('whole.img', 'magic.img');
      flip(c, 4096 + 6);
      expect(() => scanImages([c])).toThrow(/bad magic .*corrupt metadata area header/);
    });

    it('a committed copy with a bad checksum: an older copy is used, and the scan says so', () => {
      const img = copy('whole.img', 'crc.img');
      const s0 = scanImages([img]);
      const seqno = s0.vgs[0]!.vg.seqno;
      const hdr = Buffer.alloc(64);
      const fd = fs.openSync(img, 'r');
      fs.readSync(fd, hdr, 0, 64, 4096);
      fs.closeSync(fd);
      flip(img, 4096 + Number(hdr.readBigUInt64LE(40)) + 100);
      const before = sha256(img);
      const s = scanImages([img]);
      expect(s.vgs[0]!.vg.seqno).toBe(seqno - 1);
      expect(s.vgs[0]!.source.kind).toBe('older-copy');
      const kinds = s.problems.map((p) => p.kind);
      expect(kinds).toEqual(['metadata-checksum', 'older-metadata']);
      expect(s.problems[0]!.message).toMatch(
        /the committed metadata text \(offset \d+, \d+ bytes\) fails its checksum; an older copy \(seqno \d+, offset \d+\) is in the buffer/,
      );
      expect(s.problems[1]!.message).toMatch(/VG dmiwhole: the committed metadata is unusable; showing an older copy/);
      expect(sha256(img)).toBe(before);
    });

    it('a bad checksum with no older copy: one line', () => {
      const image = sparse(path.join(dir, 'fresh.img'), 16 * MiB);
      const dev = attach(image);
      lvm([dev], 'pvcreate', '-ff', '-y', dev);
      lvm([dev], 'vgcreate', '-s', '1M', 'dmifresh', dev);
      detachAll();
      expect(scanImages([image]).vgs[0]!.vg.seqno).toBe(1);
      flip(image, 4096 + 512 + 20);
      expect(() => scanImages([image])).toThrow(/fails its checksum, and no older copy is in the buffer$/);
    });

    it('text that does not parse (checksum right): an older copy, "does not parse" and the line', () => {
      const img = copy('whole.img', 'parse.img');
      rewriteMetadata(img, 0, 4096, 'dmiwhole {\nid = "x"\nseqno = 99\nextent_size = \n}\n');
      const s = scanImages([img]);
      expect(s.problems[0]!.kind).toBe('metadata-unparsable');
      expect(s.problems[0]!.message).toMatch(/does not parse \(.*line 5: expected a value, got "}"\)/);
      expect(s.vgs[0]!.source.kind).toBe('older-copy');
    });

    it("extents past the PV's end: a finding, and a one-line error when the pool is located", () => {
      const img = copy('docker.img', 'pastpv.img');
      const text = made.reports.docker!.backup.replace(/(thinpool_tmeta \{[\s\S]*?stripes = \[\s*"pv0", )\d+/, '$1 62');
      expect(text).not.toBe(made.reports.docker!.backup);
      rewriteMetadata(
        img,
        0,
        4096,
        text.replace(/seqno = (\d+)/, (_m, n: string) => `seqno = ${Number(n) + 1}`),
      );
      const l = lvmListing([img]);
      const f = l.findings.find((x) => x.kind === 'extent-past-pv-end')!;
      expect(f.message).toMatch(
        /LV docker\/thinpool_tmeta segment1: extents 62\.\.63 of pv0 are past the PV's end \(pe_count 63\)/,
      );
      expect(() => locateLvmPool([img])).toThrow(
        /thinpool_tmeta segment1: extents 62\.\.63 of pv0 are past the PV's end \(pe_count 63\)/,
      );
    });

    it('an image with no PV, a directory, a missing file', () => {
      const img = sparse(path.join(dir, 'empty.img'), MiB);
      expect(() => scanImages([img])).toThrow(
        /empty\.img: no LVM physical volume \(no LABELONE label in the first 4 sectors of the image\)/,
      );
      expect(() => scanImages([dir])).toThrow(/is a directory/);
      expect(() => scanImages([path.join(dir, 'nope.img')])).toThrow(/no such file or directory/);
    });
  });
});
