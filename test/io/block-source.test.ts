/**
 * BlockSource's reading: scattered blocks one small chunk each (LRU), sequential reading ahead in large reads, and
 * the same bytes as the file whatever the order, across extents of two files too.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockSource } from '../../src/io/block-source.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmi-blocksource-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const BS = 4096;
const N = 300; // blocks
const body = randomBytes(N * BS);
const file = path.join(dir, 'meta.bin');
fs.writeFileSync(file, body);

const expectBlock = (src: BlockSource, n: number) =>
  expect(Buffer.from(src.read(n)).equals(body.subarray(n * BS, (n + 1) * BS)), `block ${n}`).toBe(true);

describe('BlockSource reading', () => {
  it('reads a sequential pass ahead in large reads (64 blocks by default), the same bytes', () => {
    const src = BlockSource.open(file);
    for (let n = 0; n < N; n++) expectBlock(src, n);
    // chunk 0 (8 blocks), then read-ahead from block 8: 64 blocks a read
    expect(src.stats.reads).toBe(1 + Math.ceil((N - 8) / 64));
    expect(src.stats.bytesRead).toBe(N * BS);
    src.close();
  });

  it('reads scattered blocks one chunk each (8 blocks by default), not a whole read-ahead', () => {
    const src = BlockSource.open(file);
    const blocks = [5, 250, 100, 180, 30];
    for (const n of blocks) expectBlock(src, n);
    expect(src.stats.reads).toBe(blocks.length);
    expect(src.stats.bytesRead).toBe(blocks.length * 8 * BS);
    // cached: no more reads
    for (const n of blocks) expectBlock(src, n);
    expect(src.stats.reads).toBe(blocks.length);
    src.close();
  });

  it('any order, any mix, a small cache: the file bytes every time', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) % N) >>> 0;
    for (const opts of [{}, { chunkBlocks: 1, cacheBytes: 2 * BS, streamBlocks: 3 }, { chunkBlocks: 16 }]) {
      const src = BlockSource.open(file, opts);
      for (let i = 0; i < 2000; i++) {
        const n = i % 7 < 4 ? rnd() : (i * 3) % N; // scattered, with runs of nearby and sequential blocks
        expectBlock(src, n);
        if (n + 1 < N) expectBlock(src, n + 1);
      }
      src.close();
    }
  });

  it('reads ahead across extents of two files (a logical volume in pieces)', () => {
    const a = path.join(dir, 'a.bin');
    const b = path.join(dir, 'b.bin');
    // logical bytes [0, 100 blocks) in b at 4096·3 + 10, then [100, N) in a at 777
    const fa = Buffer.alloc(777 + (N - 100) * BS, 0xaa);
    body.copy(fa, 777, 100 * BS);
    const fb = Buffer.alloc(3 * BS + 10 + 100 * BS, 0xbb);
    body.copy(fb, 3 * BS + 10, 0, 100 * BS);
    fs.writeFileSync(a, fa);
    fs.writeFileSync(b, fb);
    const src = BlockSource.open(a, {
      extents: [
        { path: b, offset: 3 * BS + 10, length: 100 * BS },
        { offset: 777, length: (N - 100) * BS },
      ],
    });
    expect(src.nrBlocks).toBe(N);
    for (let n = 0; n < N; n++) expectBlock(src, n);
    for (let n = N - 1; n >= 0; n -= 13) expectBlock(src, n);
    src.close();
  });

  it('a file shorter than the range it was opened with is a one-line error naming the block', () => {
    const short = path.join(dir, 'short.bin');
    fs.writeFileSync(short, body.subarray(0, 100 * BS));
    const src = BlockSource.open(short);
    fs.truncateSync(short, 40 * BS);
    expect(() => {
      for (let n = 0; n < 100; n++) src.read(n);
    }).toThrow(/short\.bin: truncated while reading block 40/);
    src.close();
  });
});
