#!/usr/bin/env node
/**
 * Child process of the export benchmark: the copy alone (open the pool, copyThinDevice into a new file), timed
 * inside the process, without the CLI's start-up. Prints one JSON line.
 * Usage: node bench/export-child.js META DATA DEVICE_ID SIZE OUT
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { openPool } from '../dist/thin/pool.js';
import { copyThinDevice, prestartHashWorker } from '../dist/thin/copy.js';

const [meta, data, devId, size, outPath] = process.argv.slice(2);
const t0 = performance.now();
prestartHashWorker(); // as exportDevice does
const pool = openPool(meta);
const out = fs.openSync(outPath, 'wx', 0o600);
const r = await copyThinDevice({
  pool,
  devId: Number(devId),
  dataPath: data,
  size: Number(size),
  out,
  outName: outPath,
});
fs.closeSync(out);
pool.close();
const ms = performance.now() - t0;
process.stdout.write(
  JSON.stringify({
    ms,
    sha256: r.sha256,
    reads: r.reads,
    writes: r.writes,
    asyncWindows: r.asyncWindows,
    hashedInWorker: r.hashedInWorker,
    maxRssKb: process.resourceUsage().maxRSS,
  }) + '\n',
);
