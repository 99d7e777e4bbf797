#!/usr/bin/env node
// CommonJS (bin/package.json), so that `dminspect --version` alone is one required file and Node's ES module loader
// never starts (issue 15); every other run imports the ES module bundle (where main() answers --version through
// commander's option, with the same text: test/cli/startup.test.ts compares them).
'use strict';

const argv = process.argv;
if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V')) {
  process.stdout.write(`${require('../dist/bundle/version.cjs').versionText()}\n`);
} else {
  import('../dist/bundle/main.js').then(async ({ main }) => {
    process.exitCode = await main(argv);
  });
}
