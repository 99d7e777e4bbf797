#!/usr/bin/env node
/**
 * The single-file binary (release/dminspect-linux-x64, `npm run build:binary`) against `node bin/dminspect.js`:
 * start-up (`--version`) and a small real command (`containers --root fixtures/sample --json`), runs interleaved,
 * medians; and the file's size.   node bench/binary.js [--reps 15]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureBuild, median, repo } from './common.js';

const args = process.argv.slice(2);
const i = args.indexOf('--reps');
const reps = i >= 0 ? Number(args[i + 1]) : 15;
const binary = path.join(repo, 'release', 'dminspect-linux-x64');
if (!fs.existsSync(binary)) {
  console.error('bench/binary: release/dminspect-linux-x64 is missing: npm run build:binary');
  process.exit(1);
}
ensureBuild();
const runs = {
  node: [process.execPath, path.join(repo, 'bin', 'dminspect.js')],
  binary: [binary],
};
const cmds = {
  '--version': ['--version'],
  'containers --json': ['containers', '--root', path.join(repo, 'fixtures', 'sample'), '--json'],
};
const t = {};
for (let r = 0; r < reps + 1; r++) {
  for (const [cname, cargs] of Object.entries(cmds)) {
    for (const [rname, argv] of Object.entries(runs)) {
      const t0 = process.hrtime.bigint();
      const p = spawnSync(argv[0], [...argv.slice(1), ...cargs], { stdio: ['ignore', 'pipe', 'pipe'] });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (p.status !== 0) throw new Error(`${rname} ${cname}: exit ${p.status}: ${p.stderr}`);
      if (r > 0) (t[`${cname}|${rname}`] ??= []).push(ms); // the first round warms the page cache
    }
  }
}
console.log(
  `single-file binary: ${(fs.statSync(binary).size / 1048576).toFixed(1)} MiB; node ${process.version}; median of ${reps}, interleaved:`,
);
for (const cname of Object.keys(cmds)) {
  const n = median(t[`${cname}|node`]);
  const b = median(t[`${cname}|binary`]);
  console.log(
    `  ${cname.padEnd(18)} node ${n.toFixed(0).padStart(5)} ms   binary ${b.toFixed(0).padStart(5)} ms   ratio binary/node ${(b / n).toFixed(2)}`,
  );
}
