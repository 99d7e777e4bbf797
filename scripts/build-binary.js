#!/usr/bin/env node
/**
 * `npm run build:binary`: release/dminspect-linux-x64, one executable that needs no Node.js (x86-64, glibc ≥ 2.17,
 * Linux ≥ 3.10), and release/dminspect-linux-x64.sha256 beside it (`sha256sum -c` format).
 *
 * Bun's `bun build --compile` with the runtime of @oven/bun-linux-x64-baseline (a devDependency, so nothing is
 * downloaded here): the baseline build needs only SSE4.2-era x86-64 (no AVX/AVX2), for pre-Haswell Xeons.
 * - The CRC addon (@node-rs/crc32) is not bundled (src/util/crc32c.ts loads it by a computed name under Node only):
 *   a compiled Bun executable would write an embedded `.node` to /tmp and dlopen it at each start.
 * - cpu-features (an optional native helper of ssh2, used only for ssh:// Docker hosts) stays external; ssh2 falls back.
 * - .env and bunfig.toml in the working directory are not read (a forensic tool runs in arbitrary directories).
 * --bytecode: the bundle is stored pre-compiled (faster start, a few MB more).
 * DMINSPECT_BUILD is defined to "binary linux-x64 baseline, <git sha>" for `dminspect --version`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const outDir = path.join(repo, 'release');
const out = path.join(outDir, 'dminspect-linux-x64');

function fail(msg) {
  console.error(`build:binary: ${msg}`);
  process.exit(1);
}

let bun;
try {
  bun = path.join(path.dirname(require.resolve('@oven/bun-linux-x64-baseline/package.json')), 'bin', 'bun');
} catch {
  fail('@oven/bun-linux-x64-baseline is not installed (npm ci installs it on linux-x64)');
}
if (!fs.existsSync(bun)) fail(`${bun} is missing`);

function gitSha() {
  const r = spawnSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: repo, encoding: 'utf8' });
  if (r.status !== 0) return 'unknown commit';
  const dirty =
    spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: repo,
      encoding: 'utf8',
    }).stdout.trim() !== '';
  return r.stdout.trim() + (dirty ? '+dirty' : '');
}

console.log('build:binary: npm run build');
execFileSync('npm', ['run', '--silent', 'build'], { cwd: repo, stdio: 'inherit' });

const build = `binary linux-x64 baseline, ${gitSha()}`;
fs.mkdirSync(outDir, { recursive: true });
const args = [
  'build',
  '--compile',
  '--bytecode',
  '--format=esm',
  '--target=bun-linux-x64-baseline',
  `--compile-executable-path=${bun}`,
  '--no-compile-autoload-dotenv',
  '--no-compile-autoload-bunfig',
  '--external',
  'cpu-features',
  '--define',
  `DMINSPECT_BUILD=${JSON.stringify(build)}`,
  '--outfile',
  out,
  path.join(repo, 'bin', 'dminspect.js'),
];
console.log(`build:binary: bun ${args.join(' ')}`);
const r = spawnSync(bun, args, { cwd: repo, stdio: 'inherit' });
if (r.status !== 0) fail(`bun build failed (exit ${r.status ?? r.signal})`);

const hash = createHash('sha256').update(fs.readFileSync(out)).digest('hex');
fs.writeFileSync(`${out}.sha256`, `${hash}  ${path.basename(out)}\n`);
const v = spawnSync(out, ['--version'], { encoding: 'utf8' });
if (v.status !== 0 || !v.stdout.includes(build))
  fail(`${out} --version did not report "${build}": ${v.stdout}${v.stderr}`);
console.log(
  `build:binary: ${path.relative(repo, out)} (${(fs.statSync(out).size / 1048576).toFixed(1)} MiB, sha256 ${hash})`,
);
console.log(v.stdout.trim());
