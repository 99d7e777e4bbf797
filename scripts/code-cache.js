#!/usr/bin/env node
/**
 * Makes the V8 code cache of one output mode (bin/bundle.js: `json` → dist/bundle/main.cjs.<arch>.cache, `text` →
 * dist/bundle/main.cjs.<arch>.text.cache; scripts/build.js runs this once per mode, each in a fresh Node, so that neither
 * cache holds what the other mode's runs compiled): loads the bundle through bin/bundle.js as a run does, runs the
 * commands users run most on fixtures/sample (read-only, --no-live, their output dropped) in that mode, so that V8
 * has compiled their functions, and writes what V8 compiled. bin/bundle.js hands it to V8 at every run of that mode:
 * the same Node takes it, another rejects it (then the bundle compiles as without one).
 * Usage: node scripts/code-cache.js json|text
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { loadBundle, cacheFiles } = createRequire(import.meta.url)('../bin/bundle.js');

const mode = process.argv[2];
if (!Object.hasOwn(cacheFiles, mode)) {
  console.error(`code cache: usage: node scripts/code-cache.js ${Object.keys(cacheFiles).join('|')}`);
  process.exit(2);
}
const sample = path.join(repo, 'fixtures', 'sample');
const id = fs.readdirSync(path.join(sample, 'containers')).sort()[0];
const json = mode === 'json' ? ['--json'] : [];
const runs = [
  ['containers', ...json, '--root', sample],
  ['container', id.slice(0, 12), ...json, '--no-live', '--root', sample],
];

const { exports, makeCache } = loadBundle(true);
const sink = { out: () => {}, err: () => {} };
for (const args of runs) {
  const code = await exports.main(['node', 'dminspect', ...args], sink);
  if (code !== 0) {
    console.error(`code cache: dminspect ${args.join(' ')} exited ${code}`);
    process.exit(1);
  }
}
const cacheFile = cacheFiles[mode];
fs.writeFileSync(cacheFile, makeCache());
// which Node made it (only that one's V8 takes it): test/cli/startup.test.ts expects it taken or rejected by that
fs.writeFileSync(`${cacheFile}.json`, `${JSON.stringify({ node: process.version, v8: process.versions.v8 })}\n`);
