#!/usr/bin/env node
// CommonJS (bin/package.json), so that `dminspect --version` alone is one required file; every other run loads the
// CLI bundled as one CommonJS file (under Node dist/bundle/main.vm.js, that bundle in its module wrapper, with the V8
// code cache made for it at build time: bin/bundle.js; under Bun dist/bundle/main.cjs), and Node's ES module loader
// never starts (issue 15). main() answers --version through commander's option, with the same text
// (test/cli/startup.test.ts compares them).
// Under Bun (the single-file binary) this entry is also the held reads' worker: held-read.ts starts it again as a
// worker thread, and there it serves the reads instead of running a command.
'use strict';

const argv = process.argv;
const bun = process.versions.bun !== undefined;
if (bun && !require('node:worker_threads').isMainThread) {
  require('../dist/bundle/main.cjs').serveHeldReads();
} else if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V')) {
  process.stdout.write(`${require('../dist/bundle/version.cjs').versionText()}\n`);
} else {
  // the single-file binary (Bun) bundles the required file itself; Node compiles it with its code cache
  const { main, setHeldWorkerEntry } = bun ? require('../dist/bundle/main.cjs') : loadForNode();
  // the binary's held reads run in a worker started on this file (in the binary /$bunfs/root/…: __filename is
  // the build machine's path)
  (bun ? setHeldWorkerEntry(globalThis.Bun.main) : Promise.resolve())
    .then(() => main(argv))
    .then((code) => {
      // Every write was synchronous (cli/output.ts) and every hold, mount and worker is released inside main(): exit
      // now rather than tear the heap down page by page (and wait for V8's background compiles) as a natural end
      // of the event loop does, a few ms of every short command on the development VM (issue 15)
      process.exit(code);
    });
}

/**
 * The bundle's exports, compiled with its code cache; for the commands that read a whole pool or a whole Docker root
 * (the bundle's BULK_COMMANDS), the young generation then stops growing. V8 doubles it after a scavenge that keeps
 * much (up to 16 MB a semi-space), and every fresh page costs a page fault (~19 us on the development VM):
 * `containers --json` over 10,000 containers made 9,500 faults, 6,100 with the young generation left at its first
 * size, for 1.4% more instructions in the extra scavenges; `pool` about 450 fewer on the fragmented and the
 * 20M-mapping bench pools. The other commands keep V8's default: loading node:v8 to set the flag costs every run about
 * 8M instructions and 70 faults (`container <prefix>`; issue 15). Set at run time, after the cache was taken: V8
 * checks the flags a cache was made with when it takes it (the cache's training runs main() without this). Only on
 * the V8 versions it was measured on (Node 20, 22, 24): V8 prints an error for a flag it does not know.
 */
function loadForNode() {
  const loader = require('./bundle.js');
  // the code cache of the run's output mode (--json or text: bin/bundle.js)
  const bundle = loader.loadBundle(false, loader.cacheMode(argv)).exports;
  const v8Major = Number(process.versions.v8.split('.')[0]);
  if (bundle.BULK_COMMANDS.has(argv[2]) && v8Major >= 11 && v8Major <= 13)
    require('node:v8').setFlagsFromString('--semi-space-growth-factor=1');
  return bundle;
}
