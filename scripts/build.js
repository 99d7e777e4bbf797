#!/usr/bin/env node
/**
 * `npm run build`: tsc (src/ → dist/, one file per module, what the tests and the guest scripts import), then
 * esbuild bundles dist/cli/main.js and what it imports into one CommonJS file, dist/bundle/main.cjs, and
 * scripts/code-cache.js makes V8's code cache for it, dist/bundle/main.cjs.cache; bin/dminspect.js runs the bundle
 * with that cache (bin/bundle.js).
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
 * dist/bundle/main.vm.js, is that file inside the module wrapper with whitespace and comments removed: no faster in
 * instructions, but 450 fewer page faults per run (a fault costs ~19 us on the development VM). Names are kept, so
 * stack traces (`--debug`) still name our functions.
 * `--version` alone runs dist/bundle/version.cjs (util/build-info.js bundled as CommonJS), without the ES module loader.
 * Left out of the bundle, and loaded only by the code that needs them: dockerode (a daemon; with ssh2's optional
 * native parts), execa (commands that run dmsetup, mount, losetup) and the CRC addon (loaded by a computed name).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { build, transformSync } from 'esbuild';

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
  external: ['dockerode', 'execa'],
  // held-read.ts, crc32c.ts and timer.ts find files from import.meta.url, which CommonJS spells with __filename
  define: { 'import.meta.url': '__dmiImportMetaUrl' },
  banner: { js: "const __dmiImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  legalComments: 'none',
  logLevel: 'warning',
});

// The externals' import() goes through __dmiImport, which bin/bundle.js passes in (an import() of its own, in a file
// Node's loader compiled): Node 20's V8 code cache drops the host-defined options of the functions it restores, so an
// import() inside them fails ("A dynamic import callback was not specified"; Node 22 and 24 keep them). Under Bun
// (the binary) __dmiImport is not defined and the literal import(), which Bun bundles, runs.
{
  const code = fs.readFileSync(entry, 'utf8');
  const seen = new Set();
  const routed = code.replace(/\bimport\("(dockerode|execa)"\)/g, (_, name) => {
    seen.add(name);
    return `(typeof __dmiImport === "function" ? __dmiImport("${name}") : import("${name}"))`;
  });
  if (seen.size !== 2)
    throw new Error(`${entry}: expected import("dockerode") and import("execa"), found ${[...seen]}`);
  fs.writeFileSync(entry, routed);
}

// An all-ASCII file: esbuild escapes non-ASCII characters in code, not in comments, and one such character makes V8
// hold the whole 600 KB source as a two-byte string (read, hashed against the cache and scanned at twice the size:
// about 9M instructions per run). The comments' characters become `\u{...}` text; the code is unchanged, which
// the comparison of both files with their comments and whitespace removed checks.
{
  const code = fs.readFileSync(entry, 'utf8');
  const ascii = code.replace(/[^ -~\t\n\r]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
  const bare = (js) => transformSync(js, { minifyWhitespace: true, legalComments: 'none', format: 'cjs' }).code;
  if (bare(ascii) !== bare(code)) throw new Error(`${entry}: non-ASCII characters outside comments`);
  fs.writeFileSync(entry, ascii);
}

// Node's built-in modules as they are: esbuild turns each module's `import * as fs from 'node:fs'` into
// `__toESM(require("node:fs"), 1)`, a copy of the module object with a getter per property (about 100 for fs), made
// once per importing module (29 of them import fs) and then called on every `fs.` access. Our code only ever imports
// a namespace (checked: no `.default` of such a copy is read), so the module object itself does the same.
{
  const code = fs.readFileSync(entry, 'latin1');
  const copies = [...code.matchAll(/\b([\w$]+) = __toESM\(require\("(node:[\w/]+)"\), 1\)/g)];
  const defaults = copies.filter(([, name]) => new RegExp(`\\b${name.replace(/\$/g, '\\$')}\\.default\\b`).test(code));
  if (copies.length === 0 || defaults.length > 0)
    throw new Error(
      `${entry}: expected namespace imports of node: modules only (${copies.length}, ${defaults.map((d) => d[1])})`,
    );
  const plain = code.replace(/\b([\w$]+) = __toESM\(require\("(node:[\w/]+)"\), 1\)/g, '$1 = require("$2")');
  if (/__toESM\(require\("node:/.test(plain)) throw new Error(`${entry}: a node: module is still copied by __toESM`);
  fs.writeFileSync(entry, plain);
}

// What bin/bundle.js compiles: the bundle inside Node's module wrapper (with __dmiImport, above), whitespace and
// comments removed, one file read as Latin-1. Every page this VM touches costs a page fault (~19 us here), and the
// source was read, copied into a V8 string and copied again when the wrapper was concatenated to it: written whole
// at build time, the 622 KB became 435 KB read once (450 fewer page faults for `container <prefix>`). Names are kept,
// so a stack trace (--debug) still names our functions, in dist/bundle/main.vm.js.
{
  const code = fs.readFileSync(entry, 'latin1');
  const { code: min } = transformSync(code, {
    minifyWhitespace: true,
    legalComments: 'none',
    format: 'cjs',
    charset: 'ascii',
  });
  fs.writeFileSync(
    path.join(outdir, 'main.vm.js'),
    `(function (exports, require, module, __filename, __dirname, __dmiImport) {${min}\n});`,
  );
}

// V8's code cache for the bundle, made by this Node in a fresh process (scripts/code-cache.js).
const cache = spawnSync(process.execPath, [path.join(repo, 'scripts/code-cache.js')], {
  cwd: repo,
  stdio: ['ignore', 'ignore', 'inherit'],
});
if (cache.status !== 0) process.exit(cache.status ?? 1);

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
