/**
 * Fuzz: random byte flips in a real metadata file (seeded, bounded rounds). Every read either
 * succeeds or throws a DmiError; nothing else escapes, nothing hangs. Most rounds re-compute the
 * flipped block's checksum so the structural checks behind the checksum get exercised too.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DmiError } from '../../src/errors.js';
import { openPool } from '../../src/thin/index.js';
import { blockChecksum, identifyBlock } from '../../src/thin/checksum.js';
import { hasThinTools, prng, randomPool, removeTmp, restore, tmpDir } from './helpers.js';

const ROUNDS = 300;

describe.skipIf(!hasThinTools)('fuzzed metadata', () => {
  afterAll(removeTmp);

  it(`${ROUNDS} rounds of random byte flips: only DmiError or valid results`, () => {
    const base = fs.readFileSync(restore(randomPool(31, 2, 3, 500)));
    // Blocks in use: those that verify as some block type.
    const used: number[] = [];
    for (let b = 0; b < base.length / 4096; b++)
      if (identifyBlock(base.subarray(b * 4096, b * 4096 + 4096))) used.push(b);
    expect(used.length).toBeGreaterThan(10);
    const file = path.join(tmpDir(), 'fuzz.bin');
    const rnd = prng(2024);
    const outcomes = { ok: 0, error: 0 };
    const codes = new Set<string>();
    for (let round = 0; round < ROUNDS; round++) {
      const buf = Buffer.from(base);
      const nBlocks = 1 + Math.floor(rnd() * 3);
      for (let k = 0; k < nBlocks; k++) {
        const b = used[Math.floor(rnd() * used.length)]!;
        const blk = buf.subarray(b * 4096, b * 4096 + 4096);
        const kind = identifyBlock(blk);
        const flips = 1 + Math.floor(rnd() * 4);
        for (let f = 0; f < flips; f++) {
          // Bias towards headers, keys and the first values where the structure lives.
          const off = rnd() < 0.5 ? Math.floor(rnd() * 64) : Math.floor(rnd() * 4096);
          blk[off] = blk[off]! ^ (1 << Math.floor(rnd() * 8));
        }
        if (kind && rnd() < 0.8) blk.writeUInt32LE(blockChecksum(blk, kind), 0);
      }
      fs.writeFileSync(file, buf);
      try {
        const pool = openPool(file, { metadataSnap: rnd() < 0.1 });
        try {
          const usage = pool.usage();
          for (const u of usage.values())
            expect(u.exclusive >= 0 && u.shared >= 0 && u.exclusive + u.shared >= u.mapped).toBe(true);
          pool.spaceMaps();
          for (const { devId } of pool.mappingRoots()) {
            let n = 0;
            for (const r of pool.mappingRuns(devId)) n += r.length;
            expect(n).toBeLessThan(1e7);
            pool.highestMappedBlock(devId);
          }
          pool.nextFreeDeviceId();
        } finally {
          pool.close();
        }
        outcomes.ok++;
      } catch (e) {
        if (!(e instanceof DmiError)) throw new Error(`round ${round}: not a DmiError: ${(e as Error)?.stack ?? e}`);
        codes.add(e.code);
        outcomes.error++;
      }
    }
    expect(outcomes.ok + outcomes.error).toBe(ROUNDS);
    expect(outcomes.error).toBeGreaterThan(0);
    expect([...codes].every((c) => ['BAD_INPUT', 'UNSUPPORTED', 'NOT_FOUND'].includes(c))).toBe(true);
  });
});
