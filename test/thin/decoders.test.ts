/** Decoders on synthetic bytes (no thin-provisioning-tools needed). */
import { describe, expect, it } from 'vitest';
import { DmiError } from '../../src/errors.js';
import { blockChecksum, identifyBlock, SALT, verifyBlock } from '../../src/thin/checksum.js';
import { decodeNodeHeader, expectedMaxEntries } from '../../src/thin/btree.js';
import { bitmapEntry, countBitmap, decodeIndexEntry, markUsedEntries } from '../../src/thin/space-map.js';
import { decodeDeviceDetails } from '../../src/thin/details.js';

function block(n: number, kind: keyof typeof SALT, fill?: (b: Buffer) => void): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt32LE(n, 8);
  fill?.(b);
  b.writeUInt32LE(blockChecksum(b, kind), 0);
  return b;
}

describe('thin decoders', () => {
  it('checksum: CRC-32C of bytes 4.. XOR salt; the salt identifies the block type', () => {
    for (const kind of Object.keys(SALT) as (keyof typeof SALT)[]) {
      const b = block(7, kind, (x) => x.fill(0x33, 100, 200));
      expect(identifyBlock(b)).toBe(kind);
      expect(() => verifyBlock(b, 7, kind)).not.toThrow();
      expect(() => verifyBlock(b, 8, kind)).toThrow(/block number mismatch/);
      b[300] = 1;
      expect(() => verifyBlock(b, 7, kind)).toThrow(DmiError);
    }
    // Zero block with blocknr 0: raw CRC-32C (no final inversion) of 4092 zero bytes.
    const z = Buffer.alloc(4096);
    expect(identifyBlock(z)).toBeNull();
  });

  it('max_entries per value size as the kernel computes them', () => {
    expect([8, 16, 24, 4].map(expectedMaxEntries)).toEqual([252, 168, 126, 336]);
  });

  it('node header checks', () => {
    const leaf = block(3, 'btree', (b) => {
      b.writeUInt32LE(2, 4);
      b.writeUInt32LE(2, 16);
      b.writeUInt32LE(126, 20);
      b.writeUInt32LE(24, 24);
    });
    expect(decodeNodeHeader(leaf, 3, 'details', 24)).toMatchObject({
      isLeaf: true,
      nrEntries: 2,
      maxEntries: 126,
      valuesOffset: 32 + 8 * 126,
    });
    expect(() => decodeNodeHeader(leaf, 3, 'mapping', 8)).toThrow(/btree node 3 \(mapping\): value size 24/);
  });

  it('bitmap entries: bit 2s is the high bit, 2s+1 the low bit; counts of used and overflow', () => {
    const b = Buffer.alloc(4096);
    // entry 0 = 1 (low bit = bit 1), entry 1 = 2 (high bit = bit 2), entry 2 = 3 (bits 4, 5), entry 16 = 1 (next u32, bit 1)
    b.writeUInt32LE((1 << 1) | (1 << 2) | (1 << 4) | (1 << 5), 16);
    b.writeUInt32LE(1 << 1, 20);
    expect([0, 1, 2, 3, 16].map((e) => bitmapEntry(b, e))).toEqual([1, 2, 3, 0, 1]);
    expect(countBitmap(b, 16320)).toEqual({ used: 4, overflow: 1 });
    expect(countBitmap(b, 16)).toEqual({ used: 3, overflow: 1 });
    expect(countBitmap(b, 2)).toEqual({ used: 2, overflow: 0 });
  });

  it('countBitmap agrees with bitmapEntry entry by entry, aligned or not, for every partial last word', () => {
    let seed = 7;
    const rand = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const counted = (b: Buffer, n: number): { used: number; overflow: number } => {
      let used = 0;
      let overflow = 0;
      for (let e = 0; e < n; e++) {
        const v = bitmapEntry(b, e);
        if (v !== 0) used++;
        if (v === 3) overflow++;
      }
      return { used, overflow };
    };
    for (const shift of [0, 1, 2, 3]) {
      // a block at byte offset `shift` of its ArrayBuffer: 0 takes the word view, 1..3 the unaligned reads
      const b = Buffer.alloc(4096 + shift).subarray(shift);
      for (let i = 16; i < 4096; i++) b[i] = rand() & 0xff;
      b.fill(0, 1000, 1400); // zero words, skipped
      b.fill(0xff, 2000, 2100); // all 3s
      for (const n of [1, 15, 16, 17, 31, 1000, 16319, 16320]) expect(countBitmap(b, n)).toEqual(counted(b, n));
    }
  });

  it('markUsedEntries marks the entries bitmapEntry reads as not 0, at the given offset, aligned or not', () => {
    let seed = 11;
    const rand = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (const shift of [0, 1, 2, 3]) {
      const b = Buffer.alloc(4096 + shift).subarray(shift);
      // sparse entries (most words zero, some with one entry set) and a dense stretch
      for (let i = 16; i < 4096; i++) b[i] = rand() % 7 === 0 ? 1 << (rand() % 8) : 0;
      for (let i = 3000; i < 3200; i++) b[i] = rand() & 0xff;
      b.fill(0xff, 4000, 4096); // the last entries all 3
      for (const n of [0, 1, 15, 16, 17, 31, 1000, 16319, 16320, 20000]) {
        const at = 5;
        const out = new Uint8Array(at + 16320 + 3).fill(0);
        markUsedEntries(b, n, out, at);
        const want = new Uint8Array(out.length);
        for (let e = 0; e < Math.min(n, 16320); e++) if (bitmapEntry(b, e) !== 0) want[at + e] = 1;
        expect(Buffer.from(out).equals(Buffer.from(want)), `shift ${shift}, ${n} entries`).toBe(true);
      }
    }
  });

  it('index entry and device details', () => {
    const b = Buffer.alloc(64);
    b.writeUInt32LE(99, 0);
    b.writeUInt32LE(5, 8);
    b.writeUInt32LE(6, 12);
    expect(decodeIndexEntry(b, 0, 'x')).toEqual({ blockNr: 99, nrFree: 5, noneFreeBefore: 6 });
    const d = Buffer.alloc(24);
    d.writeUInt32LE(10, 0);
    d.writeUInt32LE(1, 4);
    d.writeUInt32LE(3, 8);
    d.writeUInt32LE(4, 16);
    d.writeUInt32LE(5, 20);
    expect(decodeDeviceDetails(2, d, 0, 'x')).toEqual({
      devId: 2,
      mappedBlocks: 2 ** 32 + 10,
      transactionId: 3,
      creationTime: 4,
      snapshottedTime: 5,
    });
    d.writeUInt32LE(0xffffffff, 4);
    expect(() => decodeDeviceDetails(2, d, 0, 'leaf 9')).toThrow(/leaf 9: device 2 mapped_blocks is too large/);
  });
});
