// Helpers the benchmarks share: a seeded PRNG, the median, a tool probe, and building dist/ when src/ is newer.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Every timed command runs without NODE_EXTRA_CA_CERTS (unless DMI_BENCH_KEEP_ENV=1): Node parses that CA bundle at
 * every start (about 410M instructions, 60 ms, on the development machine, whose environment sets it), which is a
 * property of that machine, not of the hosts dminspect runs on. Kept, it flattered every ratio to `node -e 0` and
 * slowed every Node-side time against thin_ls, dd and dc3dd. The children inherit this process's environment.
 */
const droppedEnv = [];
if (process.env.DMI_BENCH_KEEP_ENV !== '1') {
  for (const name of ['NODE_EXTRA_CA_CERTS']) {
    if (process.env[name] === undefined) continue;
    droppedEnv.push(name);
    delete process.env[name];
  }
}

/** One line saying what the timed commands' environment left out (empty when nothing). */
export function envNote() {
  return droppedEnv.length
    ? `environment: ${droppedEnv.join(', ')} unset for every timed command (DMI_BENCH_KEEP_ENV=1 keeps it)`
    : '';
}

/** Seeded PRNG (mulberry32): the same pools and layouts every run. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function hasTool(name) {
  return spawnSync(name, ['-V'], { stdio: 'ignore' }).status === 0;
}

/** Builds dist/ (tsc and the bundle bin/dminspect.js runs) unless it is newer than every source. */
export function ensureBuild() {
  const r = spawnSync(process.execPath, [path.join(repo, 'scripts/build.js'), '--if-stale'], {
    cwd: repo,
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error(`build failed (${r.status})`);
}
