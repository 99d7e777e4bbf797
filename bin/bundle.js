// Loads dist/bundle/main.vm.js (the CLI bundled as one CommonJS file, dist/bundle/main.cjs, written by scripts/build.js
// inside the module wrapper and without whitespace or comments) with V8's code cache for it,
// dist/bundle/main.cjs.cache, which scripts/build.js makes at build time with this same loader: V8 then takes each
// function it compiled then from the cache instead of parsing and compiling it again (about a quarter of
// `container <prefix>`'s instructions, issue 15). A cache made by another V8 (another Node version, other V8 flags)
// is rejected by V8 and the bundle compiles as without one. Nothing is ever written here: a forensic tool leaves no
// file behind on the host it runs on, so a missing or rejected cache stays so until the next build.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire } = require('node:module');

const file = path.join(__dirname, '..', 'dist', 'bundle', 'main.cjs');
const vmFile = path.join(__dirname, '..', 'dist', 'bundle', 'main.vm.js');
const cacheFile = `${file}.cache`;

/**
 * The bundle's exports. `make`: compile without the cache and return, beside the exports, the function that
 * serializes what V8 has compiled so far (scripts/build.js calls it after its training runs).
 */
function loadBundle(make = false) {
  // Node's module wrapper with one more argument: __dmiImport, the bundle's import() of dockerode and execa
  // (scripts/build.js routes them here: an import() in a function restored from Node 20's code cache fails).
  // The file is ASCII: read as Latin-1, it is copied once into a one-byte string, which V8 compiles as it is
  const source = fs.readFileSync(vmFile, 'latin1');
  let cachedData;
  if (!make) {
    try {
      cachedData = fs.readFileSync(cacheFile);
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

module.exports = { loadBundle, cacheFile };
