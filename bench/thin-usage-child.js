#!/usr/bin/env node
/**
 * Child process of the thin benchmark: the `pool --json` equivalent on one metadata file —
 * superblock, device details, per-device mapped/exclusive/shared, both space maps (every metadata
 * block in use read and its checksum verified). Prints one JSON line.
 * Usage: node bench/thin-usage-child.js META
 */
import { performance } from 'node:perf_hooks';
import { openPool } from '../dist/thin/index.js';

const t0 = performance.now();
const pool = openPool(process.argv[2]);
const usage = pool.usage();
const spaceMaps = pool.spaceMaps();
const rows = [];
for (const [dev, u] of usage) rows.push([dev, u.mapped, u.exclusive, u.shared]);
const ms = performance.now() - t0;
const out = {
  ms,
  maxRssKb: process.resourceUsage().maxRSS,
  blocksVerified: pool.stats.blocksVerified,
  metadataUsed: spaceMaps.metadata.used,
  dataUsed: spaceMaps.data.used,
  walk: pool.usageStats,
  rows,
};
pool.close();
process.stdout.write(JSON.stringify(out) + '\n');
