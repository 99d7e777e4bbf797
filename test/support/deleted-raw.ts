/**
 * The checks on a kernel-written pool with a deleted thin device (test/kernel/guest/deleted-raw.sh): shared by the
 * VM test (test/kernel/deleted.test.ts, a fresh guest run) and the host test on the committed capture
 * (test/recover/deleted-capture.test.ts, fixtures/captures/deleted-raw/).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { cli, hashFile, readFromImage } from './cli.js';

/** `@@ key value` lines → key → values. */
export function parseMarkers(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^@@ (\S+) ?(.*)$/.exec(line);
    if (!m) continue;
    out.set(m[1]!, [...(out.get(m[1]!) ?? []), (m[2] ?? '').trim()]);
  }
  return out;
}

/** virtual block → data block, from thin_dump XML (range_mapping and single_mapping). */
export function xmlMappings(xml: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of xml.matchAll(/<range_mapping origin_begin="(\d+)" data_begin="(\d+)" length="(\d+)"/g)) {
    for (let i = 0; i < Number(m[3]); i++) out.set(Number(m[1]) + i, Number(m[2]) + i);
  }
  for (const m of xml.matchAll(/<single_mapping origin_block="(\d+)" data_block="(\d+)"/g))
    out.set(Number(m[1]), Number(m[2]));
  return out;
}

function untar(archive: string, dir: string): { metadata: string; data: string } {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['--sparse', '-xzf', archive, '-C', dir]);
  return { metadata: path.join(dir, 'metadata'), data: path.join(dir, 'data') };
}

async function json(...args: string[]): Promise<any> {
  const r = await cli(...args, '--json');
  expect(r.code, `dminspect ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout);
}

export interface DeletedRawFigures {
  versions: number;
  newestMapped: number;
  reusedAfter: number;
  exportSha256: string;
}

/**
 * `dir` holds a.tar.gz, b.tar.gz, thin1-before-delete.xml, thin3-after.xml; `markers` the guest's @@ lines.
 * Everything is unpacked under `tmp`.
 */
export async function checkDeletedRaw(
  dir: string,
  markers: Map<string, string[]>,
  tmp: string,
): Promise<DeletedRawFigures> {
  const one = (k: string): string => markers.get(k)?.[0] ?? '';
  const before = xmlMappings(fs.readFileSync(path.join(dir, 'thin1-before-delete.xml'), 'utf8'));
  expect(before.size).toBeGreaterThan(100);

  // ---- A: right after the delete --------------------------------------------------------------------
  const a = untar(path.join(dir, 'a.tar.gz'), path.join(tmp, 'a'));
  const evidence = [hashFile(a.metadata), hashFile(a.data)];
  const la = await json('deleted', '--metadata', a.metadata, '--data', a.data);
  expect(la.liveDeviceIds).toEqual([2]);
  expect(la).toMatchObject({ unattributedCount: 0, unattributed: [], detailsOnly: [] });
  expect(la.devices.map((d: any) => d.deviceId)).toEqual([1]);
  const d1 = la.devices[0];
  expect(d1.owner).toBe('unknown');
  expect(d1.versions.length).toBeGreaterThanOrEqual(2);
  const newest = d1.versions.filter((v: any) => v.newest);
  expect(newest).toHaveLength(1);
  expect(newest[0].version).toBe(d1.versions.length);
  // the newest version maps what the kernel's tree mapped just before the delete
  expect(newest[0].mappedBlocks).toBe(before.size);
  expect(newest[0].highestVblock).toBe(Math.max(...before.keys()));
  expect(d1.details[0]).toMatchObject({ mappedBlocks: before.size });
  expect(newest[0].details).toMatchObject({ mappedBlocks: before.size, creationTime: 0 });
  // earlier versions map fewer blocks (the file system grew commit by commit)
  for (let i = 1; i < d1.versions.length; i++)
    expect(d1.versions[i].mappedBlocks).toBeGreaterThanOrEqual(d1.versions[i - 1].mappedBlocks);
  // nothing is reused yet: every block is free (intact or zeros)
  expect(newest[0].blocks.reused).toBe(0);
  expect(newest[0].blocks.contested).toBe(0);
  expect(newest[0].blocks.shared).toBe(0);
  expect(newest[0].blocks.free + newest[0].blocks.discarded).toBe(before.size);

  const imgA = path.join(tmp, 'thin1-a.img');
  const ea = await json(
    'export',
    '--deleted',
    '--device-id',
    '1',
    '--metadata',
    a.metadata,
    '--data',
    a.data,
    '--size',
    one('size-1'),
    imgA,
  );
  expect(ea.sha256).toBe(one('sha256-1'));
  expect(hashFile(imgA)).toBe(one('sha256-1'));
  expect(ea).toMatchObject({
    deviceId: 1,
    newest: true,
    sizeFrom: 'option',
    size: Number(one('size-1')),
    reusedRanges: [],
  });
  if (process.getuid?.() === 0 && spawnSync('losetup', ['--version'], { stdio: 'ignore' }).status === 0) {
    const text = readFromImage(imgA, 'ext4', 'evidence.txt');
    expect(text).toMatch(/\(second line\)\n$/);
    expect(createSha(text)).toBe(one('file-sha256'));
  }
  // a live device is refused as "deleted"
  const live = await cli(
    'export',
    '--deleted',
    '--device-id',
    '2',
    '--metadata',
    a.metadata,
    '--data',
    a.data,
    path.join(tmp, 'no.img'),
  );
  expect(live.code).toBe(9);
  expect(live.stderr).toMatch(/thin device 2 is live/);
  expect(fs.existsSync(path.join(tmp, 'no.img'))).toBe(false);
  expect([hashFile(a.metadata), hashFile(a.data)]).toEqual(evidence);

  // ---- B: a new device took some of the freed blocks ------------------------------------------------
  const b = untar(path.join(dir, 'b.tar.gz'), path.join(tmp, 'b'));
  const thin3 = new Set(xmlMappings(fs.readFileSync(path.join(dir, 'thin3-after.xml'), 'utf8')).values());
  expect(thin3.size).toBeGreaterThan(0);
  const expectReused = [...before.entries()].filter(([, d]) => thin3.has(d));
  const lb = await json('deleted', '--metadata', b.metadata, '--data', b.data);
  expect(lb.liveDeviceIds).toEqual([2, 3]);
  expect(lb.devices.map((d: any) => d.deviceId)).toEqual([1]);
  const nb = lb.devices[0].versions.find((v: any) => v.newest);
  expect(nb.mappedBlocks).toBe(before.size);
  expect(expectReused.length).toBeGreaterThan(0);
  expect(nb.blocks.reused).toBe(expectReused.length);
  const imgB = path.join(tmp, 'thin1-b.img');
  const eb = await json(
    'export',
    '--deleted',
    '--device-id',
    '1',
    '--metadata',
    b.metadata,
    '--data',
    b.data,
    '--size',
    one('size-1'),
    imgB,
  );
  const reusedV = new Set<number>(
    eb.reusedRanges.flatMap((r: any) => Array.from({ length: r.length }, (_, i) => r.vblock + i)),
  );
  expect([...reusedV].sort((x, y) => x - y)).toEqual(expectReused.map(([v]) => v).sort((x, y) => x - y));
  // outside the reused blocks the export equals the kernel's bytes; the reused ones are holes, not the new owner's bytes
  const bs = lb.dataBlockBytes as number;
  const fa = fs.readFileSync(imgA);
  const fb = fs.readFileSync(imgB);
  expect(fb.length).toBe(fa.length);
  for (let v = 0; v * bs < fa.length; v++) {
    const x = fa.subarray(v * bs, (v + 1) * bs);
    const y = fb.subarray(v * bs, (v + 1) * bs);
    if (reusedV.has(v))
      expect(
        y.every((c) => c === 0),
        `vblock ${v} is a hole`,
      ).toBe(true);
    else expect(y.equals(x), `vblock ${v}`).toBe(true);
  }
  return {
    versions: d1.versions.length,
    newestMapped: newest[0].mappedBlocks,
    reusedAfter: nb.blocks.reused,
    exportSha256: ea.sha256,
  };
}

function createSha(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
