// Loads dist/bundle/main.vm.js (the CLI bundled as one CommonJS file, dist/bundle/main.cjs, written by scripts/build.js
// inside the module wrapper and without whitespace or comments) with a V8 code cache for it, which scripts/build.js
// makes at build time with this same loader: V8 then takes each function it compiled then from the cache instead of
// parsing and compiling it again (about a quarter of `container <prefix>`'s instructions, issue 15).
// Two caches, one per output mode, each trained on its own runs (scripts/code-cache.js): one for `--json` runs, one
// for the others, whose tables and plain text use functions (cli-table3, string-width, the renderers) that a JSON run
// never calls. One cache trained on both made every JSON run pay for deserializing the text functions
// (`containers --json` 300 more page faults); without them a text run compiles about 100 functions lazily
// (`container <prefix>` 8-14M more instructions). A cache made by another V8 (another V8 version, other V8 flags) is
// rejected by V8 and the bundle compiles as without one. Nothing is ever written here: a forensic tool leaves no file
// behind on the host it runs on, so a missing or rejected cache stays so until the next build.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire } = require('node:module');

const file = path.join(__dirname, '..', 'dist', 'bundle', 'main.cjs');
const vmFile = path.join(__dirname, '..', 'dist', 'bundle', 'main.vm.js');
/**
 * The code cache of each output mode (`json`: runs with --json; `text`: the others), named after the CPU architecture
 * that made it: V8 checks a cache's V8 version, flags and source, not the CPU: Node 20.20.2 for arm64 (the Node that
 * made it, for another CPU) and Node 20.11 for s390x took a cache made on x64 and crashed (SIGSEGV) running the bundle
 * (test/cli/arm64.test.ts, test/thin/big-endian.test.ts). A checkout built on one machine and copied to another of
 * another architecture finds no cache of its own (the bundle compiles as without one).
 */
const cacheFiles = {
  json: `${file}.${process.arch}.cache`,
  text: `${file}.${process.arch}.text.cache`,
};

/** The output mode whose cache a run with these arguments (process.argv) takes. */
function cacheMode(argv) {
  return argv.includes('--json') ? 'json' : 'text';
}

/**
 * The bundle's exports, compiled with the cache of output mode `mode`. `make`: compile without a cache and return,
 * beside the exports, the function that serializes what V8 has compiled so far (scripts/code-cache.js calls it after
 * its training runs).
 */
function loadBundle(make = false, mode = 'json') {
  // Node's module wrapper with one more argument: __dmiImport, the bundle's import() of dockerode and execa
  // (scripts/build.js routes them here: an import() in a function restored from Node 20's code cache fails).
  // The file is ASCII: read as Latin-1, it is copied once into a one-byte string, which V8 compiles as it is
  const source = fs.readFileSync(vmFile, 'latin1');
  let cachedData;
  if (!make) {
    try {
      cachedData = fs.readFileSync(cacheFiles[mode]);
    } catch {
      cachedData = undefined; // no cache (a build that made none): compiled as usual
    }
  }
  const script = new vm.Script(source, { filename: vmFile, cachedData });
  const mod = { exports: {} };
  const importExternal = (specifier) => import(specifier);
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, path.dirname(file), importExternal);
  return {
    exports: mod.exports,
    cacheRejected: script.cachedDataRejected === true,
    makeCache: () => script.createCachedData(),
  };
}

module.exports = { loadBundle, cacheFiles, cacheMode };
