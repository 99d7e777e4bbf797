// Helpers the benchmarks share: a seeded PRNG, the median, a tool probe, and building dist/ when src/ is newer.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

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

function newest(dir) {
  let t = 0;
  for (const f of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, f.name);
    t = Math.max(t, f.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

/** Runs `npm run build` (tsc, then the bundle bin/dminspect.js runs) when dist/ is missing or older than src/. */
export function ensureBuild(built = path.join(repo, 'dist/bundle/main.js')) {
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= newest(path.join(repo, 'src'))) return;
  process.stderr.write('building dist/ (npm run build)...\n');
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: repo, stdio: 'inherit' });
  if (r.status !== 0 || !fs.existsSync(built)) throw new Error(`build failed (${r.status})`);
}
