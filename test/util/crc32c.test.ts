// The portable CRC (slice-by-8 JavaScript, used by the single-file binary) against the @node-rs/crc32 addon and
// the standard check values, on lengths around the 8-byte stride and with chained initial states.
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  crc32,
  crc32c,
  crcImplementation,
  loadNativeCrc,
  nativeCrcPath,
  portableCrc32,
  portableCrc32c,
} from '../../src/util/crc32c.js';

const addon = createRequire(import.meta.url)('@node-rs/crc32') as {
  crc32: (b: Uint8Array, s?: number) => number;
  crc32c: (b: Uint8Array, s?: number) => number;
};

describe('crc32c / crc32', () => {
  it('gives the standard check values for "123456789"', () => {
    const nine = Buffer.from('123456789');
    expect(portableCrc32c(nine)).toBe(0xe3069283);
    expect(portableCrc32(nine)).toBe(0xcbf43926);
    expect(crc32c(nine)).toBe(0xe3069283);
    expect(crc32(nine)).toBe(0xcbf43926);
  });

  it('portable equals the addon on random data, lengths 0..70 and 4092/4096/65537, chained', () => {
    const lengths = [...Array.from({ length: 71 }, (_, i) => i), 4092, 4096, 65537];
    for (const len of lengths) {
      const b = randomBytes(len);
      for (const seed of [0, 0xffffffff, 0x12345678]) {
        expect(portableCrc32c(b, seed)).toBe(addon.crc32c(b, seed));
        expect(portableCrc32(b, seed)).toBe(addon.crc32(b, seed));
      }
      // chaining: crc(a ++ b) == crc(b, crc(a))
      const cut = len >> 1;
      expect(portableCrc32c(b.subarray(cut), portableCrc32c(b.subarray(0, cut)))).toBe(addon.crc32c(b));
    }
  });

  it('on glibc Linux loads the platform package directly (the generic loader costs 6–10 ms per start)', () => {
    let platformPkg: string | null = null;
    try {
      platformPkg = createRequire(import.meta.url).resolve(`@node-rs/crc32-linux-${process.arch}-gnu`);
    } catch {
      // not glibc Linux on x64/arm64: the generic loader is the one used
    }
    const path = nativeCrcPath();
    expect(path).not.toBeNull();
    if (platformPkg !== null) expect(path).toBe(platformPkg);
    // Same values as the generic loader's module.
    const b = randomBytes(4096);
    expect((createRequire(import.meta.url)(path!) as typeof addon).crc32c(b)).toBe(addon.crc32c(b));
  });

  it('uses the addon under Node, and the portable path when DMINSPECT_CRC=portable', () => {
    expect(crcImplementation()).toBe('native');
    expect(loadNativeCrc()).not.toBeNull();
    process.env.DMINSPECT_CRC = 'portable';
    try {
      expect(loadNativeCrc()).toBeNull();
    } finally {
      delete process.env.DMINSPECT_CRC;
    }
  });
});
