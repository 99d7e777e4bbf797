#!/usr/bin/env node
/**
 * Part of `npm run build` (after tsc): bundles dist/cli/main.js and what it imports into dist/bundle/, which
 * bin/dminspect.js runs (issue 15: start-up).
 *
 * Node loads ES modules one file at a time: a resolve, an asynchronous read and a compile for each of ~60 files, and
 * a CommonJS export scan for commander and cli-table3. One bundled file per command (code splitting at main.ts's
 * `import()` of each command) is read and compiled once. The code is tsc's output, unchanged but for the bundling:
 * no minifying, so stack traces (`--debug`) still name our functions.
 * Left out of the bundle, and loaded only by the code that needs them: dockerode (a daemon; with ssh2's optional
 * native parts), execa (commands that run dmsetup, mount, losetup) and the CRC addon (loaded by a computed name).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(repo, 'dist/bundle');

fs.rmSync(outdir, { recursive: true, force: true });
await build({
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
