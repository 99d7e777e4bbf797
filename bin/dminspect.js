#!/usr/bin/env node
// CommonJS (bin/package.json), so that `dminspect --version` alone is one required file and Node's ES module loader
// never starts (issue 15); every other run imports the ES module bundle (where main() answers --version through
// commander's option, with the same text: test/cli/startup.test.ts compares them).
// Under Bun (the single-file binary) this entry is also the held reads' worker: held-read.ts starts it again as a
// worker thread, and there it serves the reads instead of running a command.
'use strict';

const argv = process.argv;
const bun = process.versions.bun !== undefined;
if (bun && !require('node:worker_threads').isMainThread) {
  import('../dist/bundle/main.js').then(({ serveHeldReads }) => serveHeldReads());
} else if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V')) {
  process.stdout.write(`${require('../dist/bundle/version.cjs').versionText()}\n`);
} else {
  import('../dist/bundle/main.js').then(async ({ main, setHeldWorkerEntry }) => {
    if (bun) await setHeldWorkerEntry(globalThis.Bun.main); // this file (in the binary, /$bunfs/root/…; __filename is the build's path)
    process.exitCode = await main(argv);
  });
}
