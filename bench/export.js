#!/usr/bin/env node
/**
 * Export benchmark: `dminspect export` (the built CLI, a fresh process per run) against
 * `dd if=<data> of=<file> bs=4M iflag=count_bytes count=<mapped bytes>` — the same number of bytes read from
 * the same data file and written to a file on the same filesystem, in the same run.
 *
 * Pool: a thin device with ≥ 1 GiB mapped (default 2 GiB) in fragmented runs of 1–16 blocks of 64 KiB,
 * placed out of order over a sparse data file filled with real (random) bytes, a few small holes in the
 * device; metadata written by thin_restore; a Docker root whose record carries the size. Generated once
 * under --dir and re-used.
 *
 * Caches cannot be dropped here (no privilege assumption), so both sides are warm: the data file is read
 * once and each command runs once untimed before the timed repetitions; `sync` (untimed) runs before every
 * timed command so neither pays for the other's write-back, and outputs are deleted between runs.
 * Reports medians (of --reps, default 3), the throughput ratio dd-time / export-time (target ≥ 0.9) and the
 * export's peak RSS from /usr/bin/time (target ≤ 100 MB); checks the export's sha256. Also the time SHA-256
 * alone takes over the image's bytes in memory (one core): the export prints that hash, so this is its floor;
 * where SHA-256 is slower than dd's copy, the ratio is bounded by it.
 *
 * Usage: node bench/export.js [--gib 2] [--reps 3] [--dir /tmp/dminspect-bench/export] [--force] [--json]
 */
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildV2Root } from '../scripts/docker-root-builder.js';
import { ensureBuild, median, mulberry32 } from './common.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BS = 64 * 1024;
const TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : null;




function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r;
}

/**
 * Generates (or re-uses) the pool. Returns { root, data, metadata, size, mappedBytes, runs, sha256 }.
 * The expected sha256 of the device image is computed while generating.
 */
export function generateExportPool(dir, gib = 2, force = false) {
  const stampFile = path.join(dir, 'stamp.json');
  const want = { version: 1, gib };
  if (!force && fs.existsSync(stampFile)) {
    const s = JSON.parse(fs.readFileSync(stampFile, 'utf8'));
    if (s.version === want.version && s.gib === gib && fs.existsSync(s.data) && fs.existsSync(s.metadata)) return s;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const rnd = mulberry32(5150);
  const target = Math.ceil((gib * 1024 ** 3) / BS);
  // Virtual layout: runs of 1..16 blocks, a small hole (1..4 blocks) after about one run in eight.
  const runs = [];
  let v = 0;
  let mapped = 0;
  while (mapped < target) {
    const len = Math.min(1 + Math.floor(rnd() * 16), target - mapped);
    runs.push({ v, len, d: -1, src: Math.floor(rnd() * 255) * BS });
    v += len;
    mapped += len;
    if (rnd() < 0.125) v += 1 + Math.floor(rnd() * 4);
  }
  const vEnd = v + 3; // the device ends in a short hole
  // Data placement: the runs in random order, 0..3 free blocks between them.
  const order = runs.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  let d = 0;
  for (const i of order) {
    d += Math.floor(rnd() * 4);
    runs[i].d = d;
    d += runs[i].len;
  }
  const nrDataBlocks = d + 16;

  // Real bytes: slices of a 17 MiB random pool (each run starts at its own offset).
  const pool = randomBytes(256 * BS + 16 * BS);
  const root = path.join(dir, 'docker');
  const built = buildV2Root(root, { images: [{ name: 'busybox:latest', layers: ['b'] }], containers: [{ name: 'bench', image: 'busybox:latest', state: 'exited' }] });
  const c = built.containers[0];
  const devId = built.devices.get(c.mountId).device_id;
  const dm = path.join(root, 'devicemapper', 'devicemapper');
  const data = path.join(dm, 'data');
  const metadata = path.join(dm, 'metadata');
  const fd = fs.openSync(data, 'w');
  fs.ftruncateSync(fd, nrDataBlocks * BS);
  for (const i of [...order].sort((a, b) => runs[a].d - runs[b].d)) {
    const r = runs[i];
    fs.writeSync(fd, pool, r.src, r.len * BS, r.d * BS);
  }
  fs.closeSync(fd);
  // Expected image hash, in virtual order.
  const h = createHash('sha256');
  const zero = Buffer.alloc(4 * BS);
  let pos = 0;
  const zeros = (n) => {
    while (n > 0) {
      const k = Math.min(n, zero.length);
      h.update(zero.subarray(0, k));
      n -= k;
    }
  };
  for (const r of runs) {
    zeros((r.v - pos) * BS);
    h.update(pool.subarray(r.src, r.src + r.len * BS));
    pos = r.v + r.len;
  }
  zeros((vEnd - pos) * BS);

  const xml = [`<superblock uuid="" time="1" transaction="${built.transactionId}" data_block_size="128" nr_data_blocks="${nrDataBlocks}">`];
  xml.push(`  <device dev_id="${devId}" mapped_blocks="${mapped}" transaction="1" creation_time="0" snap_time="0">`);
  for (const r of runs) {
    if (r.len === 1) xml.push(`    <single_mapping origin_block="${r.v}" data_block="${r.d}" time="0"/>`);
    else xml.push(`    <range_mapping origin_begin="${r.v}" data_begin="${r.d}" length="${r.len}" time="0"/>`);
  }
  xml.push('  </device>', '</superblock>');
  const xmlFile = path.join(dir, 'pool.xml');
  fs.writeFileSync(xmlFile, xml.join('\n') + '\n');
  fs.writeFileSync(metadata, '');
  fs.truncateSync(metadata, 64 * 1024 * 1024);
  run('thin_restore', ['-i', xmlFile, '-o', metadata]);
  const rec = path.join(root, 'devicemapper', 'metadata', c.mountId);
  const size = vEnd * BS;
  fs.writeFileSync(rec, JSON.stringify({ ...JSON.parse(fs.readFileSync(rec, 'utf8')), size }));
  const stamp = { ...want, root, data, metadata, ref: 'bench', deviceId: devId, size, mappedBytes: mapped * BS, runs: runs.length, nrDataBlocks, sha256: h.digest('hex') };
  fs.writeFileSync(stampFile, JSON.stringify(stamp, null, 2));
  return stamp;
}

/** The CLI entry: bin/dminspect.js once main registers `export`, else a shim that adds it (same code path). */
function cliEntry(dir) {
  const bin = path.join(repo, 'bin/dminspect.js');
  const main = JSON.stringify(path.join(repo, 'dist/cli/main.js'));
  const probe = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${main}); process.exit(m.buildProgram().commands.some((c) => c.name() === 'export') ? 0 : 1);`]);
  if (probe.status === 0) return bin;
  const shim = path.join(dir, 'dminspect-export-shim.mjs');
  fs.writeFileSync(
    shim,
    `import { buildProgram } from ${JSON.stringify(path.join(repo, 'dist/cli/main.js'))};
import { register } from ${JSON.stringify(path.join(repo, 'dist/cli/commands/export.js'))};
import { stdio } from ${JSON.stringify(path.join(repo, 'dist/cli/render.js'))};
const p = buildProgram(stdio);
register(p, stdio);
try { await p.parseAsync(process.argv); } catch (e) { console.error(e.message); process.exitCode = e.exitCode ?? 1; }
`,
  );
  return shim;
}

function timed(argv) {
  const full = TIME ? [TIME, '-f', '__RSS__ %M', ...argv] : argv;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(full[0], full.slice(1), { encoding: 'utf8', maxBuffer: 1 << 26 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  const m = /__RSS__ (\d+)/.exec(r.stderr ?? '');
  return { ms, rssKb: m ? Number(m[1]) : null, stdout: r.stdout };
}


/** Runs the benchmark; returns the numbers. */
export function runExportBench({ dir = '/tmp/dminspect-bench/export', gib = 2, reps = 3, force = false } = {}) {
  ensureBuild(path.join(repo, 'dist/cli/commands/export.js'));
  const p = generateExportPool(dir, gib, force);
  const entry = cliEntry(dir);
  const outDir = path.join(dir, 'out');
  fs.mkdirSync(outDir, { recursive: true });
  const img = path.join(outDir, 'export.img');
  const ddOut = path.join(outDir, 'dd.out');
  const ours = () => [process.execPath, entry, 'export', p.ref, img, '--root', p.root, '--json'];
  const dd = () => ['dd', `if=${p.data}`, `of=${ddOut}`, 'bs=4M', 'iflag=count_bytes', `count=${p.mappedBytes}`, 'status=none'];
  const clean = () => {
    fs.rmSync(img, { force: true });
    fs.rmSync(ddOut, { force: true });
    spawnSync('sync');
  };
  // Warm: the data file into the page cache, one untimed run of each.
  run('cat', [p.data], { stdio: ['ignore', 'ignore', 'pipe'] });
  clean();
  timed(ours());
  clean();
  timed(dd());
  const us = [];
  const them = [];
  let sha = null;
  for (let i = 0; i < reps; i++) {
    clean();
    const r = timed(ours());
    sha = JSON.parse(r.stdout).sha256;
    us.push(r);
    clean();
    them.push(timed(dd()));
  }
  clean();
  // The floor no copier that prints the sha256 can beat: SHA-256 of the image's bytes, one core, in memory.
  const hashRuns = [];
  const block = randomBytes(4 * 1024 * 1024);
  for (let i = 0; i < reps; i++) {
    const h = createHash('sha256');
    const t0 = process.hrtime.bigint();
    for (let left = p.size; left > 0; left -= block.length) h.update(left >= block.length ? block : block.subarray(0, left));
    h.digest();
    hashRuns.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const hashMs = median(hashRuns);
  const usMs = median(us.map((r) => r.ms));
  const ddMs = median(them.map((r) => r.ms));
  const mb = p.mappedBytes / 1e6;
  return {
    mappedBytes: p.mappedBytes,
    size: p.size,
    runs: p.runs,
    exportMs: Math.round(usMs),
    ddMs: Math.round(ddMs),
    exportMBps: Math.round(mb / (usMs / 1000)),
    ddMBps: Math.round(mb / (ddMs / 1000)),
    ratio: Math.round((ddMs / usMs) * 100) / 100,
    exportRssMb: Math.round(Math.max(...us.map((r) => r.rssKb ?? 0)) / 1024),
    ddRssMb: Math.round(Math.max(...them.map((r) => r.rssKb ?? 0)) / 1024),
    hashFloorMs: Math.round(hashMs),
    /** Export time over the larger of dd's time and the SHA-256 floor (1 = as fast as either allows). */
    efficiency: Math.round((Math.max(ddMs, hashMs) / usMs) * 100) / 100,
    sha256Ok: sha === p.sha256,
    allMs: { export: us.map((r) => Math.round(r.ms)), dd: them.map((r) => Math.round(r.ms)) },
    entry: path.relative(repo, entry),
  };
}

/** One line with the numbers and the verdict. */
export function formatExportBench(r) {
  return (
    `export ${(r.mappedBytes / 1024 ** 3).toFixed(2)} GiB mapped in ${r.runs} runs (image ${(r.size / 1024 ** 3).toFixed(2)} GiB): ` +
      `dminspect export ${r.exportMs} ms (${r.exportMBps} MB/s, peak RSS ${r.exportRssMb} MB) vs dd ${r.ddMs} ms (${r.ddMBps} MB/s) ` +
      `→ throughput ratio ${r.ratio} (target ≥ 0.9); sha256 of the image alone takes ${r.hashFloorMs} ms ` +
      `(export / max(dd, sha256 floor) = ${r.efficiency}); sha256 ${r.sha256Ok ? 'ok' : 'WRONG'}` +
      `${r.ratio >= 0.9 && r.exportRssMb <= 100 ? '' : '  [target missed]'}`
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const r = runExportBench({ dir: opt('--dir', undefined), gib: Number(opt('--gib', '2')), reps: Number(opt('--reps', '3')), force: args.includes('--force') });
  console.log(formatExportBench(r));
  if (args.includes('--json')) console.log(JSON.stringify(r, null, 2));
  process.exit(r.sha256Ok ? 0 : 1);
}
