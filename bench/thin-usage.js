/**
 * Times the thin/ reader (a child process doing the `pool --json` equivalent) against
 * `thin_ls -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS` on the same file, in the same run:
 * a warm-up, then `reps` alternating repetitions each; reports medians, the ratio, peak RSS of both
 * (from /usr/bin/time when present, else the child's own maxRSS) and checks the numbers are identical.
 * Every command runs under /usr/bin/time the same way (its fork and exec are in every figure), its output read
 * through a pipe by this process; the 1-minute load average before and after is returned (`load`).
 *
 * What the two read: thin_ls opens the metadata with O_DIRECT and reads every block with Linux AIO (strace on the 5M
 * pool: `openat(..., O_RDONLY|O_EXCL|O_DIRECT)`, 80,065 `io_submit` calls), so it never reads from the page cache,
 * and no warm-up changes its time. dminspect reads through the page cache, which the untimed runs fill: its figures
 * are warm-cache ones. On the development VM, whose disk is a virtio device backed by the host, a run with the file's
 * pages dropped first (posix_fadvise DONTNEED on a private copy) took about 0.1–0.25 s more (load 3.4, noisy).
 *
 * Whether `pool` walks in one thread or two depends on the pool's size and on the load average at the moment
 * (thin/pool.ts usageThreads): the 5M pools always walk in one thread; the 20M pool uses the worker when a whole
 * second CPU is free (1-minute load ≤ CPUs − 1), which this benchmark's own runs keep near 1 on a 2-core machine.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const child = path.join(here, 'thin-usage-child.js');
const bin = path.join(here, '..', 'bin', 'dminspect.js');
const cliArgs = (meta) => [bin, 'pool', '--metadata', meta, '--json', '--sort', 'id'];
const cliRows = (stdout) =>
  JSON.parse(stdout)
    .devices.map((d) => [d.deviceId, d.mappedBlocks, d.exclusiveBlocks, d.sharedBlocks])
    .sort((a, b) => a[0] - b[0]);
const TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const LS_ARGS = ['-o', 'DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS', '--no-headers'];

function timed(cmd, args) {
  const argv = TIME ? [TIME, '-f', '__RSS__ %M', cmd, ...args] : [cmd, ...args];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 1 << 28 });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}`);
  const m = /__RSS__ (\d+)/.exec(r.stderr ?? '');
  return { wall, rssKb: m ? Number(m[1]) : null, stdout: r.stdout };
}

function parseLs(stdout) {
  const rows = [];
  for (const line of stdout.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length === 4 && f.every(Number.isFinite)) rows.push(f);
  }
  return rows.sort((a, b) => a[0] - b[0]);
}

/** Benchmarks one metadata file; returns a result object. */
export function benchThinUsage(meta, { reps = 5, label = path.basename(meta) } = {}) {
  const loadBefore = os.loadavg()[0];
  // Warm the page cache the same way for both: one untimed run each.
  const warmLs = timed('thin_ls', [...LS_ARGS, meta]);
  const warmUs = timed(process.execPath, [child, meta]);
  const ref = parseLs(warmLs.stdout);
  const ours = JSON.parse(warmUs.stdout).rows.sort((a, b) => a[0] - b[0]);
  const warmCli = timed(process.execPath, cliArgs(meta));
  const identical =
    JSON.stringify(ref) === JSON.stringify(ours) && JSON.stringify(ref) === JSON.stringify(cliRows(warmCli.stdout));
  const ls = [];
  const us = [];
  const cli = [];
  for (let i = 0; i < reps; i++) {
    ls.push(timed('thin_ls', [...LS_ARGS, meta]));
    const r = timed(process.execPath, [child, meta]);
    r.json = JSON.parse(r.stdout);
    us.push(r);
    cli.push(timed(process.execPath, cliArgs(meta)));
  }
  const cliWall = median(cli.map((r) => r.wall));
  const cliRss = Math.max(...cli.map((r) => r.rssKb ?? 0));
  const lsWall = median(ls.map((r) => r.wall));
  const usWall = median(us.map((r) => r.wall));
  const usInProc = median(us.map((r) => r.json.ms));
  const usRss = Math.max(...us.map((r) => r.rssKb ?? r.json.maxRssKb));
  const lsRss = Math.max(...ls.map((r) => r.rssKb ?? 0));
  const last = us[us.length - 1].json;
  const totals = ours.reduce((t, r) => [t[0] + r[1], t[1] + r[2], t[2] + r[3]], [0, 0, 0]);
  return {
    label,
    devices: ours.length,
    mapped: totals[0],
    exclusive: totals[1],
    shared: totals[2],
    thinLsMs: Math.round(lsWall),
    /** `dminspect pool --metadata META --json`, the whole CLI as a user runs it: the headline figure. */
    cliMs: Math.round(cliWall),
    cliRatio: Math.round((cliWall / lsWall) * 1000) / 1000,
    cliRssMb: Math.round(cliRss / 1024),
    /** The reader alone in a child process (thin-usage-child.js). */
    oursMs: Math.round(usWall),
    oursInProcessMs: Math.round(usInProc),
    ratio: Math.round((usWall / lsWall) * 1000) / 1000,
    thinLsRssMb: Math.round(lsRss / 1024),
    oursRssMb: Math.round(usRss / 1024),
    blocksVerified: last.blocksVerified,
    metadataUsed: last.metadataUsed,
    identical,
    load: [loadBefore, os.loadavg()[0]].map((x) => Math.round(x * 100) / 100),
  };
}
