/** BlockSource over several (offset, length) extents of one or more files, and partition tables made by sfdisk. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readPartitionTable } from '../../src/lvm/index.js';
import { BlockSource } from '../../src/io/block-source.js';
import { ExtentMap } from '../../src/io/extents.js';
import { openPool } from '../../src/thin/index.js';
import { hasThinTools, randomPool, restore } from '../thin/helpers.js';
import { removeTmp as removeThinTmp } from '../thin/helpers.js';
import { hasSfdisk, removeTmp, sh, sha256, sparse, tmp } from './helpers.js';

const dir = tmp();
afterAll(() => {
  removeTmp();
  removeThinTmp();
});

describe('ExtentMap', () => {
  const m = new ExtentMap(
    [
      { path: 'a', offset: 100, length: 10 },
      { path: 'a', offset: 110, length: 5 },
      { path: 'b', offset: 0, length: 7 },
      { offset: 50, length: 0 },
    ],
    'a',
  );
  it('merges touching extents of the same file and drops empty ones', () => {
    expect(m.extents).toEqual([
      { path: 'a', offset: 100, length: 15, at: 0 },
      { path: 'b', offset: 0, length: 7, at: 15 },
    ]);
    expect(m.length).toBe(22);
  });
  it('splits a range across extents', () => {
    expect([...m.pieces(12, 6)]).toEqual([
      { path: 'a', offset: 112, length: 3, at: 12 },
      { path: 'b', offset: 0, length: 3, at: 15 },
    ]);
    expect([...m.pieces(0, 0)]).toEqual([]);
    expect(() => [...m.pieces(20, 5)]).toThrow(/range 20\+5 is past the end of the extents \(22 bytes\)/);
    expect(() => new ExtentMap([{ offset: -1, length: 1 }], 'a')).toThrow(/bad extent offset -1/);
  });
});

describe('BlockSource extents', () => {
  it('reads blocks that straddle extents of two files, in extent order', () => {
    const a = path.join(dir, 'a.bin');
    const b = path.join(dir, 'b.bin');
    const data = Buffer.alloc(3 * 4096);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;
    // logical [0, 5000) in b at 1000, [5000, 12288) in a at 300.
    const fa = Buffer.alloc(300 + 7288, 0xee);
    data.copy(fa, 300, 5000);
    const fb = Buffer.alloc(1000 + 5000 + 10, 0xdd);
    data.copy(fb, 1000, 0, 5000);
    fs.writeFileSync(a, fa);
    fs.writeFileSync(b, fb);
    const src = BlockSource.open(a, {
      extents: [
        { path: b, offset: 1000, length: 5000 },
        { offset: 300, length: 7288 },
      ],
      label: 'lv',
      chunkBlocks: 2,
    });
    expect(src.nrBlocks).toBe(3);
    expect(src.path).toBe('lv');
    for (let n = 0; n < 3; n++)
      expect(Buffer.from(src.read(n)).equals(data.subarray(n * 4096, (n + 1) * 4096)), `block ${n}`).toBe(true);
    expect(() => src.read(3, 'x')).toThrow(/x: block 3 is past the end of the metadata \(3 blocks of 4 KiB in lv\)/);
    src.close();
    expect(() => BlockSource.open(a, { extents: [{ offset: 300, length: 8000 }] })).toThrow(
      /a\.bin: range 300\+8000 is past the end \(7588 bytes\)/,
    );
    expect(() => BlockSource.open(a, { extents: [{ path: path.join(dir, 'none'), offset: 0, length: 1 }] })).toThrow(
      /no such file/,
    );
  });

  it.skipIf(!hasThinTools)('openPool through scattered 1 MiB extents = openPool on the plain file', () => {
    const meta = restore(randomPool(7), 4 * 1024 * 1024);
    const body = fs.readFileSync(meta);
    const img = path.join(dir, 'scatter.img');
    const MiB = 1024 * 1024;
    const order = [2, 0, 3, 1]; // piece i of the metadata goes to image slot order[i]
    const buf = Buffer.alloc(5 * MiB, 0x77);
    order.forEach((slot, i) => body.copy(buf, slot * MiB + 4096, i * MiB, (i + 1) * MiB));
    fs.writeFileSync(img, buf);
    const h = sha256(img);
    const extents = order.map((slot) => ({ offset: slot * MiB + 4096, length: MiB }));
    const a = openPool(meta);
    const b = openPool(img, { extents, label: `${img}: vg/pool_tmeta` });
    expect(b.usage()).toEqual(a.usage());
    expect(b.spaceMaps()).toEqual(a.spaceMaps());
    expect([...b.devices().keys()]).toEqual([...a.devices().keys()]);
    a.close();
    b.close();
    expect(sha256(img)).toBe(h);
  });
});

describe.skipIf(!hasSfdisk)('partition tables (sfdisk on plain files)', () => {
  const read = (file: string) => {
    const fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const r = (o: number, n: number) => {
      const b = Buffer.alloc(n);
      fs.readSync(fd, b, 0, n, o);
      return b;
    };
    try {
      return readPartitionTable(r, size, file);
    } finally {
      fs.closeSync(fd);
    }
  };
  const sfdiskParts = (file: string) =>
    JSON.parse(sh('sfdisk', ['--json', file])).partitiontable.partitions as {
      node: string;
      start: number;
      size: number;
      type: string;
    }[];

  it('MBR with an extended partition and logical partitions', () => {
    const img = sparse(path.join(dir, 'mbr.img'), 64 * 1024 * 1024);
    sh(
      'sfdisk',
      ['--quiet', img],
      'label: dos\nstart=2048, size=8192, type=83\nstart=10240, size=40960, type=5\nstart=12288, size=8192, type=8e\nstart=22528, size=8192, type=83\nstart=53248, type=8e\n',
    );
    const t = read(img);
    expect(t.scheme).toBe('mbr');
    const ref = sfdiskParts(img).filter((p) => !['5', 'f', '85'].includes(p.type));
    expect(
      t.partitions.map((p) => ({
        n: p.number,
        start: p.start / 512,
        size: p.size / 512,
        type: p.type.replace(/^0x0?/, ''),
      })),
    ).toEqual(ref.map((p) => ({ n: Number(/(\d+)$/.exec(p.node)![1]), start: p.start, size: p.size, type: p.type })));
    expect(t.problems).toEqual([]);
  });

  it('GPT (names, LVM type GUID); a corrupt GPT header is one line', () => {
    const img = sparse(path.join(dir, 'gpt.img'), 32 * 1024 * 1024);
    sh(
      'sfdisk',
      ['--quiet', img],
      'label: gpt\nstart=2048, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="boot"\nstart=8192, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, name="docker-pv"\n',
    );
    const t = read(img);
    const ref = sfdiskParts(img);
    expect(t.scheme).toBe('gpt');
    expect(
      t.partitions.map((p) => ({ start: p.start / 512, size: p.size / 512, type: p.type.toUpperCase(), name: p.name })),
    ).toEqual(ref.map((p: any) => ({ start: p.start, size: p.size, type: p.type, name: p.name })));
    const fd = fs.openSync(img, 'r+');
    fs.writeSync(fd, Buffer.from([0x42]), 0, 1, 512 + 40);
    fs.closeSync(fd);
    expect(() => read(img)).toThrow(/gpt\.img: GPT header checksum mismatch: corrupt partition table$/);
  });

  it('no table: a zeroed or foreign first sector', () => {
    const img = sparse(path.join(dir, 'none.img'), 1024 * 1024);
    expect(read(img)).toEqual({ scheme: null, partitions: [], problems: [] });
  });
});
