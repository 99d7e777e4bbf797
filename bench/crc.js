#!/usr/bin/env node
/**
 * CRC-32C over 4096-byte metadata blocks (what verifyBlock checksums): the @node-rs/crc32 addon (native, the
 * reference) against the portable slice-by-8 JavaScript of src/util/crc32c.ts under Node, and under Bun (the
 * runtime of the single-file binary, from the @oven/bun-linux-x64-baseline devDependency) when it is installed.
 *
 *   node bench/crc.js [--mib 256] [--reps 5] [--json]
 * Prints MB/s and the ratio of each portable run's time to the native one (1 = as fast, 10 = ten times slower).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { ensureBuild, median, repo } from './common.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const mib = Number(opt('--mib', '256'));
const reps = Number(opt('--reps', '5'));

/** ms (median of reps) to checksum `mib` MiB as 4096-byte blocks, bytes [4..4096) of each like rawChecksum. */
function timeIt(fn) {
  const buf = randomBytes(16 << 20);
  const blocks = (mib << 20) / 4096;
  let sink = 0;
  const times = [];
  for (let r = 0; r < reps + 1; r++) {
    const t0 = process.hrtime.bigint();
    for (let b = 0; b < blocks; b++) {
      const off = (b * 4096) % buf.length;
      sink ^= fn(buf.subarray(off + 4, off + 4096));
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r > 0) times.push(ms); // the first run warms the JIT
  }
  return { ms: Math.round(median(times) * 10) / 10, sink };
}

if (args.includes('--child')) {
  // under Bun: the portable path only (src/util/crc32c.ts never loads the addon there)
  const { portableCrc32c } = await import(path.join(repo, 'dist/util/crc32c.js'));
  console.log(JSON.stringify(timeIt(portableCrc32c)));
  process.exit(0);
}

ensureBuild();
const { portableCrc32c } = await import(path.join(repo, 'dist/util/crc32c.js'));
const addon = createRequire(import.meta.url)('@node-rs/crc32');
const rate = (ms) => Math.round((mib * 1.048576) / (ms / 1000));
const native = timeIt((b) => addon.crc32c(b));
const portable = timeIt(portableCrc32c);
const results = [
  { label: `native (@node-rs/crc32), node ${process.version}`, ms: native.ms, mbps: rate(native.ms), ratio: 1 },
  {
    label: `portable slice-by-8, node ${process.version}`,
    ms: portable.ms,
    mbps: rate(portable.ms),
    ratio: Math.round((portable.ms / native.ms) * 10) / 10,
  },
];
let bun = null;
try {
  bun = path.join(
    path.dirname(createRequire(import.meta.url).resolve('@oven/bun-linux-x64-baseline/package.json')),
    'bin',
    'bun',
  );
} catch {
  bun = null;
}
if (bun && fs.existsSync(bun)) {
  const r = spawnSync(bun, [path.join(repo, 'bench/crc.js'), '--child', '--mib', String(mib), '--reps', String(reps)], {
    encoding: 'utf8',
  });
  const v = spawnSync(bun, ['--version'], { encoding: 'utf8' }).stdout.trim();
  if (r.status === 0) {
    const b = JSON.parse(r.stdout.trim().split('\n').pop());
    results.push({
      label: `portable slice-by-8, bun v${v} baseline (the binary's runtime)`,
      ms: b.ms,
      mbps: rate(b.ms),
      ratio: Math.round((b.ms / native.ms) * 10) / 10,
    });
  } else console.error(`bench/crc: bun run failed: ${r.stderr}`);
}
console.log(`CRC-32C over ${mib} MiB in 4096-byte blocks, median of ${reps}:`);
for (const r of results)
  console.log(
    `  ${r.label.padEnd(62)} ${String(r.ms).padStart(8)} ms  ${String(r.mbps).padStart(6)} MB/s  ratio ${r.ratio}`,
  );
if (args.includes('--json')) console.log(JSON.stringify(results, null, 2));
