#!/usr/bin/env node
/**
 * `npm run build`: tsc (src/ → dist/, one file per module, what the tests and the guest scripts import), then
 * esbuild bundles dist/cli/main.js and what it imports into one CommonJS file, dist/bundle/main.cjs, and
 * scripts/code-cache.js makes V8's code caches for it, dist/bundle/main.cjs.<arch>.cache (runs with --json) and
 * main.cjs.<arch>.text.cache (the others); bin/dminspect.js runs the bundle with the one of its output mode
 * (bin/bundle.js).
 * `--if-stale` (the `prepare` script, run by `npm ci` and again each time npx installs this checkout into its cache)
 * does nothing when dist/bundle/main.cjs is newer than every source: the first `npx dminspect` in a fresh clone
 * otherwise paid a whole tsc build (about 8 s of CPU).
 *
 * Why one CommonJS file with a code cache (issue 15, start-up, measured with callgrind on `container <prefix>`):
 * Node loads ES modules one file at a time (a resolve, an asynchronous read and a compile for each), and its ES
 * module loader alone costs ~14 ms to start; code-split ES module chunks of the same code took 269M instructions, the
 * single CommonJS file without a cache 265M (V8 pre-parses all of it), with the cache 195M. Each command's
 * `import()` stays lazy in the file (esbuild runs a module's code when it is first imported), so a run still runs
 * only what its command uses. The code is tsc's output, unchanged but for the bundling. What bin/bundle.js compiles,
 * dist/bundle/main.vm.js, is that file inside the module wrapper with whitespace and comments removed, read once:
 * loading it took 12M instructions and 500 page faults instead of 20M and 960 (a fault costs ~19 us on the
 * development VM). Names are kept, so stack traces (`--debug`) still name our functions.
 * `--version` alone runs dist/bundle/version.cjs (util/build-info.js bundled as CommonJS), without the ES module loader.
 * Left out of the bundle, and loaded only by the code that needs them: dockerode (a daemon; with ssh2's optional
 * native parts), execa (commands that run dmsetup, mount, losetup) and the CRC addon (loaded by a computed name).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { build } from 'esbuild';
import { EXTERNAL_IMPORTS, asciiOnly, plainBuiltins, routeExternalImports, vmScriptSource } from './bundle-rewrite.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(repo, 'dist/bundle');
const entry = path.join(outdir, 'main.cjs');

/** The newest modification time under `p` (a file or a directory). */
function newest(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let t = st.mtimeMs;
  for (const name of fs.readdirSync(p)) t = Math.max(t, newest(path.join(p, name)));
  return t;
}

const inputs = [
  'src',
  'tsconfig.json',
  'tsconfig.build.json',
  'package.json',
  'scripts/build.js',
  'scripts/bundle-rewrite.js',
  'scripts/code-cache.js',
  'bin/bundle.js',
].map((f) => path.join(repo, f));
if (process.argv.includes('--if-stale') && fs.existsSync(entry)) {
  const built = fs.statSync(entry).mtimeMs;
  if (inputs.every((f) => !fs.existsSync(f) || newest(f) <= built)) process.exit(0);
}

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: repo, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

/**
 * commander requires node:child_process as it loads, for executable subcommands (one program per command), which
 * dminspect has none of. Node compiles child_process and what it pulls in (net, stream, dgram...) at that require:
 * about 14 ms of every run's start on the development VM. In the bundle commander gets a stand-in whose `spawn`
 * requires the real module at its first call; dminspect's own process runs (execa) load it themselves.
 */
const lazyChildProcess = {
  name: 'lazy-child-process',
  setup(b) {
    b.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
      /[\\/]node_modules[\\/]commander[\\/]/.test(args.importer)
        ? { path: 'commander-child-process', namespace: 'dmi-lazy' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'dmi-lazy' }, () => ({
      contents:
        "let cp;\nmodule.exports = { spawn: (...args) => (cp ??= require('node:child_process')).spawn(...args) };\n",
      loader: 'js',
      resolveDir: repo,
    }));
  },
};

fs.rmSync(outdir, { recursive: true, force: true });
// The CLI as one CommonJS file: bin/dminspect.js compiles it with its V8 code cache (bin/bundle.js), so Node's ES
// module loader never starts. Each command's import() in main.ts stays lazy: the command's modules run (and V8
// compiles their functions) only when it runs.
await build({
  plugins: [lazyChildProcess],
  entryPoints: [path.join(repo, 'dist/cli/main.js')],
  outfile: entry,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL_IMPORTS,
  // held-read.ts, crc32c.ts and timer.ts find files from import.meta.url, which CommonJS spells with __filename
  define: { 'import.meta.url': '__dmiImportMetaUrl' },
  banner: { js: "const __dmiImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  legalComments: 'none',
  logLevel: 'warning',
});

// The bundle's text rewrites (scripts/bundle-rewrite.js: each refuses a text that is not what it expects):
// externals imported through bin/bundle.js, all ASCII, node: built-ins used as they are; then what bin/bundle.js
// compiles, dist/bundle/main.vm.js (the same code in its module wrapper, without whitespace or comments).
{
  const code = plainBuiltins(asciiOnly(routeExternalImports(fs.readFileSync(entry, 'utf8'))));
  fs.writeFileSync(entry, code);
  fs.writeFileSync(path.join(outdir, 'main.vm.js'), vmScriptSource(code));
}

// V8's code caches for the bundle, one per output mode (bin/bundle.js), each made by this Node in a fresh process
// (scripts/code-cache.js); the caches of an earlier build go first (another layout of names, another architecture's).
for (const f of fs.readdirSync(outdir)) if (/\.cache(\.json)?$/.test(f)) fs.rmSync(path.join(outdir, f));
for (const mode of ['json', 'text']) {
  const cache = spawnSync(process.execPath, [path.join(repo, 'scripts/code-cache.js'), mode], {
    cwd: repo,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (cache.status !== 0) process.exit(cache.status ?? 1);
}

// `dminspect --version` alone: bin/dminspect.js (CommonJS) requires this one file and never starts Node's ES module
// loader (about 35M instructions, 7% of `node -e 0`, on the way to issue 15's --version ≤ 1.3×). crc32c.ts finds the
// addon from import.meta.url, which CommonJS spells with __filename.
await build({
  entryPoints: [path.join(repo, 'dist/util/build-info.js')],
  outfile: path.join(outdir, 'version.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  define: { 'import.meta.url': '__dmiImportMetaUrl' },
  banner: { js: "const __dmiImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  legalComments: 'none',
  logLevel: 'warning',
});
