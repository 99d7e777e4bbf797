#!/usr/bin/env node
// CommonJS (bin/package.json), so that `dminspect --version` alone is one required file; every other run loads the
// CLI bundled as one CommonJS file (dist/bundle/main.cjs) with the V8 code cache made for it at build time
// (bin/bundle.js), and Node's ES module loader never starts (issue 15). main() answers --version through
// commander's option, with the same text (test/cli/startup.test.ts compares them).
'use strict';

const argv = process.argv;
if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V')) {
  process.stdout.write(`${require('../dist/bundle/version.cjs').versionText()}\n`);
} else {
  // the single-file binary (Bun) bundles the required file itself; Node compiles it with its code cache
  const { main } =
    process.versions.bun !== undefined
      ? require('../dist/bundle/main.cjs')
      : require('./bundle.js').loadBundle().exports;
  main(argv).then((code) => {
    process.exitCode = code;
  });
}
