#!/usr/bin/env node
/**
 * The stale-metadata scan behind `dminspect deleted` (src/thin/stale.ts: one pass over every metadata block,
 * checksum only where the header already looks like a btree node) against reading the same file with `cat`
 * (the floor: one sequential read), both warm, median of N, same run.
 *
 *   node bench/stale-scan.js [shared|frag|xl] [--reps N] [--dir /tmp/dminspect-bench] [--size-gib G]
 *
 * The pool is bench/gen-pool.js's (thin_restore, 2,000 devices, 5M mappings, a 2 GiB sparse metadata file);
 * with --size-gib the same pool is restored into a G GiB metadata file (up to 15.875, the format's limit), so the
 * scan covers that many blocks. Reports wall ms, ratio to cat, peak RSS of the scan's process.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuild, median, repo } from './common.js';
import { generatePool, writePoolXml } from './gen-pool.js';

function timeCmd(cmd, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return { ms, stdout: r.stdout.toString() };
}

const CHILD = `
import { openPool } from ${JSON.stringify(path.join(repo, 'dist/thin/index.js'))};
import { scanStale } from ${JSON.stringify(path.join(repo, 'dist/thin/stale.js'))};
const t0 = performance.now();
const pool = openPool(process.argv[1]);
const r = scanStale(pool);
pool.close();
const ms = performance.now() - t0;
console.log(JSON.stringify({ ms, rssMb: Math.round(process.resourceUsage().maxRSS / 1024), blocks: r.metadataBlocks, nodes: r.btreeNodes, deleted: r.devices.length }));
`;

export function runStaleScanBench({ variant = 'shared', reps = 3, dir = '/tmp/dminspect-bench', sizeGib = 0 } = {}) {
  ensureBuild();
  let meta = generatePool(variant, dir);
  if (sizeGib > 0) {
    // the same pool restored into a metadata device of that size (thin_restore takes the size from the file)
    const big = path.join(dir, `${variant}-${sizeGib}g.meta`);
    if (!fs.existsSync(`${big}.ok`)) {
      const xml = path.join(dir, `${variant}-${sizeGib}g.xml`);
      writePoolXml(variant, xml);
      fs.rmSync(big, { force: true });
      fs.writeFileSync(big, '');
      fs.truncateSync(big, Math.floor((sizeGib * 1024 ** 3) / 4096) * 4096);
      const r = spawnSync('thin_restore', ['-i', xml, '-o', big], { stdio: ['ignore', 'ignore', 'pipe'] });
      fs.rmSync(xml, { force: true });
      if (r.status !== 0) throw new Error(`thin_restore failed: ${r.stderr}`);
      fs.writeFileSync(`${big}.ok`, '');
    }
    meta = big;
  }
  const cat = [];
  const scan = [];
  const wall = [];
  let last = null;
  timeCmd('sh', ['-c', 'cat "$0" > /dev/null', meta]); // warm the page cache
  for (let i = 0; i < reps; i++) {
    cat.push(timeCmd('sh', ['-c', `cat "$0" > /dev/null`, meta]).ms);
    const t = timeCmd(process.execPath, ['--input-type=module', '-e', CHILD, meta]);
    last = JSON.parse(t.stdout);
    scan.push(last.ms);
    wall.push(t.ms);
  }
  const catMs = Math.round(median(cat));
  const scanMs = Math.round(median(scan));
  const wallMs = Math.round(median(wall));
  return {
    variant,
    metadataBytes: fs.statSync(meta).size,
    metadataBlocks: last.blocks,
    btreeNodes: last.nodes,
    catMs,
    scanMs,
    scanWallMs: wallMs,
    ratio: Math.round((scanMs / catMs) * 100) / 100,
    wallRatio: Math.round((wallMs / catMs) * 100) / 100,
    rssMb: last.rssMb,
  };
}

export function formatStaleScanBench(r) {
  return (
    `stale scan (${r.variant}, ${(r.metadataBytes / 1024 ** 3).toFixed(2)} GiB metadata, ${r.metadataBlocks.toLocaleString('en')} blocks, ${r.btreeNodes.toLocaleString('en')} btree nodes): ` +
    `cat ${r.catMs} ms; scan ${r.scanMs} ms in-process (${r.scanWallMs} ms with node start-up) → ${r.ratio}× cat (${r.wallRatio}× with start-up), peak RSS ${r.rssMb} MB`
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const opt = (n, d) => (args.includes(n) ? args[args.indexOf(n) + 1] : d);
  const variant =
    args.find((a, i) => !a.startsWith('--') && !['--reps', '--dir', '--size-gib'].includes(args[i - 1])) ?? 'shared';
  const r = runStaleScanBench({
    variant,
    reps: Number(opt('--reps', '3')),
    dir: opt('--dir', '/tmp/dminspect-bench'),
    sizeGib: Number(opt('--size-gib', '0')),
  });
  console.log(formatStaleScanBench(r));
  if (args.includes('--json')) console.log(JSON.stringify(r));
}
