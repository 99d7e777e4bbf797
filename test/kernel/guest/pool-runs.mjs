// Runs INSIDE the guest (live-pool.sh, phase L): `dminspect pool --root ROOT --json` RUNS times in one node
// process, through the CLI's own main() (the same code path as bin/dminspect.js, without paying a node start per
// run under TCG: ~30 s each), with `dmsetup status` just before and just after each run.
// usage: node pool-runs.mjs PROJECT POOL ROOT RUNS OUTDIR
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const [project, pool, root, runs, outDir] = process.argv.slice(2);
const { main } = await import(path.join(project, 'dist/cli/main.js'));
// txn um/tm ud/td held mode, as live-pool.sh's status()
const status = () =>
  execFileSync('dmsetup', ['status', pool], { encoding: 'utf8' }).trim().split(/\s+/).slice(3, 8).join(' ');
for (let i = 1; i <= Number(runs); i++) {
  fs.writeFileSync(path.join(outDir, `${i}.before`), status());
  let out = '';
  let err = '';
  const code = await main(['node', 'dminspect', 'pool', '--root', root, '--json'], {
    out: (s) => (out += `${s}\n`),
    err: (s) => (err += `${s}\n`),
  });
  fs.writeFileSync(path.join(outDir, `${i}.after`), status());
  fs.writeFileSync(path.join(outDir, `${i}.json`), out);
  fs.writeFileSync(path.join(outDir, `${i}.err`), err);
  fs.writeFileSync(path.join(outDir, `${i}.rc`), String(code));
}
