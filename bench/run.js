#!/usr/bin/env node
/**
 * `npm run bench`: the thin/ usage benchmark against thin-provisioning-tools.
 *
 *   node bench/run.js [shared] [frag] [xl] [--reps N] [--dir /tmp/dminspect-bench] [--force] [--thin-only]
 *                     [--report-only]
 *
 * Then the Docker-records listing (bench/docker-listing.js), the offline export (bench/export.js: realistic and
 * scattered layouts, 1 GiB mapped, against dd, SHA-256, dc3dd and dcfldd in the same run) and the portable CRC-32C
 * against the native addon (bench/crc.js).
 *
 * Default variants: shared and frag (5M mappings each); xl (20M) on request or with --all.
 * Pools are generated once with thin_restore into --dir (never committed) and re-used.
 * Builds dist/ first (scripts/build.js --if-stale).
 * Targets (issue 15): `dminspect pool --json` ≤ 0.12× thin_ls on every variant (5M and 20M mappings), peak RSS ≤ 150 MB,
 * identical numbers.
 *
 * Exit status: 0 when every output was right and every target met; 1 when an output was wrong (numbers differing
 * from thin_ls, a wrong sha256, a failed reference); 3 when the outputs were right but a target was missed
 * (--report-only: 0 then, to print the figures without failing a script).
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuild, envNote, hasTool } from './common.js';
import { generatePool } from './gen-pool.js';
import { exitStatus, formatTargets, POOL_AUDIT_TARGET, targetRows } from './targets.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const reps = Number(opt('--reps', '5'));
const dir = opt('--dir', '/tmp/dminspect-bench');
const force = args.includes('--force');
let variants = args.filter((a, i) => !a.startsWith('--') && !['--reps', '--dir'].includes(args[i - 1]));
if (args.includes('--all')) variants = ['shared', 'frag', 'xl'];
if (variants.length === 0) variants = ['shared', 'frag'];

if (!hasTool('thin_restore') || !hasTool('thin_ls')) {
  console.error('bench: thin-provisioning-tools (thin_restore, thin_ls) are not installed; nothing to compare against');
  process.exit(1);
}
ensureBuild();
if (envNote()) console.log(envNote());
const { benchThinUsage } = await import('./thin-usage.js');

const results = [];
let failed = false;
for (const v of variants) {
  const meta = generatePool(v, dir, force);
  const r = benchThinUsage(meta, { reps, label: v });
  results.push(r);
  const ok = r.identical && r.cliRssMb <= 150 && r.cliRatio <= POOL_AUDIT_TARGET;
  if (!r.identical) failed = true;
  console.log(
    `${v.padEnd(7)} ${r.devices} devices, ${r.mapped.toLocaleString('en')} mapped: thin_ls ${r.thinLsMs} ms (${r.thinLsRssMb} MB), ` +
      `dminspect pool --json ${r.cliMs} ms (${r.cliRssMb} MB) → ratio ${r.cliRatio}; reader alone ${r.oursMs} ms (in-process ${r.oursInProcessMs} ms, ${r.oursRssMb} MB); ` +
      `${r.blocksVerified} blocks verified; numbers ${r.identical ? 'identical' : 'DIFFER'}${ok ? '' : '  [target missed]'}`,
  );
}
if (!args.includes('--thin-only')) {
  const { runDockerListingBench } = await import('./docker-listing.js');
  results.push({ label: 'docker-listing', ...runDockerListingBench() });
  const { runExportBench, formatExportBench, LAYOUTS } = await import('./export.js');
  for (const layout of LAYOUTS) {
    const ex = runExportBench({ reps, layout });
    console.log(formatExportBench(ex));
    results.push({ label: `export-${layout}`, ...ex });
    if (!ex.sha256Ok) failed = true;
  }
  const crc = spawnSync(process.execPath, [path.join(root, 'bench/crc.js'), '--reps', String(reps)], {
    stdio: 'inherit',
  });
  if (crc.status !== 0) failed = true;
  const { runStaleScanBench, formatStaleScanBench } = await import('./stale-scan.js');
  const st = runStaleScanBench({ variant: variants[0], reps, dir });
  console.log(formatStaleScanBench(st));
  results.push({ label: 'stale-scan', ...st });
}

// Every issue-15 target as one line: the ratio (or figure) measured in this run, its target, met or not.
const rows = targetRows(results);
for (const l of formatTargets(rows, failed)) console.log(l);
if (args.includes('--json')) console.log(JSON.stringify(results, null, 2));
process.exit(exitStatus(rows, { failed, reportOnly: args.includes('--report-only') }));
