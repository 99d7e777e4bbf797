#!/usr/bin/env node
/**
 * `npm run build`: tsc (src/ → dist/, one file per module, what the tests and the guest scripts import), then
 * esbuild bundles dist/cli/main.js and what it imports into dist/bundle/, which bin/dminspect.js runs.
 * `--if-stale` (the `prepare` script, run by `npm ci` and again each time npx installs this checkout into its cache)
 * does nothing when dist/bundle/main.js is newer than every source: the first `npx dminspect` in a fresh clone
 * otherwise paid a whole tsc build (about 8 s of CPU).
 *
 * Node loads ES modules one file at a time: a resolve, an asynchronous read and a compile for each of ~60 files, and
 * a CommonJS export scan for commander and cli-table3. One bundled file per command (code splitting at main.ts's
 * `import()` of each command) is read and compiled once. The code is tsc's output, unchanged but for the bundling:
 * no minifying, so stack traces (`--debug`) still name our functions.
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

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(repo, 'dist/bundle');
const entry = path.join(outdir, 'main.js');

/** The newest modification time under `p` (a file or a directory). */
function newest(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let t = st.mtimeMs;
  for (const name of fs.readdirSync(p)) t = Math.max(t, newest(path.join(p, name)));
  return t;
}

const inputs = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json', 'scripts/build.js'].map((f) =>
  path.join(repo, f),
);
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
await build({
  plugins: [lazyChildProcess],
  entryPoints: { main: path.join(repo, 'dist/cli/main.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['dockerode', 'execa'],
  // bundled CommonJS (commander, cli-table3) calls require() for Node's own modules
  banner: {
    js: "import { createRequire as __dmiRequire } from 'node:module';\nconst require = __dmiRequire(import.meta.url);",
  },
  chunkNames: 'chunk-[hash]',
  legalComments: 'none',
  logLevel: 'warning',
});

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
