#!/usr/bin/env node
// Start-up benchmark (issue 15 item 1; the listing from issue 6): a generated Docker root with 10,000 containers
// (layerdb entries and device records); `dminspect --version`, `dminspect containers --json` and
// `dminspect container <prefix>` wall time, run as a user would (the built bin in a fresh process), each as a
// ratio to `node -e 0` (process start-up) measured in the same run, interleaved, medians of --runs.
// Targets (issue 15): --version ≤ 1.3×, container <prefix> ≤ 1.6×, containers --json ≤ 5×.
// Reference line (not a target): a bare `node -e` that reads the same 3 files per container as `containers --json`
// (config.v2.json, the layerdb mount-id, the device record it names) with openSync/readSync/closeSync and does nothing
// else: the floor of a listing that reads each file, as a ratio to node -e 0 in the same run.
// Usage: node bench/docker-listing.js [--containers N] [--runs R]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildV2Root } from '../scripts/docker-root-builder.js';
import { envNote, median } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.join(here, '..', 'bin', 'dminspect.js');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--containers', 10000);
const RUNS = arg('--runs', 11);
export const STARTUP_TARGETS = { version: 1.3, containerByPrefix: 1.6, containersJson: 5 };

function time(argv) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 1 << 30 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

/** The floor: open, one read, close of each container's three files, in a bare Node process; prints the file count. */
const READ_FLOOR = `
const fs = require('node:fs');
const root = process.argv[1];
const buf = Buffer.allocUnsafe(64 * 1024);
const flags = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW;
function read(p) {
  const fd = fs.openSync(p, flags);
  const n = fs.readSync(fd, buf, 0, buf.length, 0);
  fs.closeSync(fd);
  return n;
}
let files = 0;
for (const id of fs.readdirSync(root + '/containers')) {
  read(root + '/containers/' + id + '/config.v2.json');
  const n = read(root + '/image/devicemapper/layerdb/mounts/' + id + '/mount-id');
  read(root + '/devicemapper/metadata/' + buf.latin1Slice(0, n).trim());
  files += 3;
}
process.stdout.write(files + '\\n');
`;

export function runDockerListingBench() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dminspect-bench-root-'));
  const images = Array.from({ length: 20 }, (_, i) => ({
    name: `app${i}:latest`,
    layers: ['base', `mid${i % 5}`, `top${i}`],
  }));
  const containers = Array.from({ length: N }, (_, i) => ({
    name: `c${i}`,
    image: `app${i % 20}:latest`,
    state: ['running', 'exited', 'created'][i % 3],
  }));
  const t0 = Date.now();
  const built = buildV2Root(root, { images, containers });
  console.log(`generated ${N} containers, ${built.devices.size} device records in ${root} (${Date.now() - t0} ms)`);
  const target = built.containers[Math.floor(N / 2)];
  const prefix = target.id.slice(0, 12);

  time([process.execPath, bin, 'containers', '--json', '--root', root]); // warm the page cache
  const res = { node: [], floor: [], version: [], list: [], byPrefix: [], byName: [] };
  let floorFiles = 0;
  let listed = 0;
  for (let i = 0; i < RUNS; i++) {
    res.node.push(time([process.execPath, '-e', '0']).ms);
    const f = time([process.execPath, '-e', READ_FLOOR, root]);
    res.floor.push(f.ms);
    floorFiles = Number(f.stdout);
    res.version.push(time([process.execPath, bin, '--version']).ms);
    const l = time([process.execPath, bin, 'containers', '--json', '--root', root]);
    res.list.push(l.ms);
    listed = JSON.parse(l.stdout).containers.length;
    const p = time([process.execPath, bin, 'container', prefix, '--json', '--root', root]);
    if (JSON.parse(p.stdout).id !== target.id) throw new Error('wrong container');
    res.byPrefix.push(p.ms);
    res.byName.push(time([process.execPath, bin, 'container', target.name, '--json', '--root', root]).ms);
  }
  if (listed !== N) throw new Error(`listed ${listed} containers, expected ${N}`);
  if (floorFiles !== 3 * N) throw new Error(`the read floor read ${floorFiles} files, expected ${3 * N}`);
  const nodeMs = median(res.node);
  const ratio = (ms) => Math.round((ms / nodeMs) * 100) / 100;
  const out = {
    containers: N,
    runs: RUNS,
    nodeStartupMs: nodeMs,
    readFloorMs: median(res.floor),
    versionMs: median(res.version),
    containersJsonMs: median(res.list),
    containerByPrefixMs: median(res.byPrefix),
    containerByNameMs: median(res.byName),
  };
  out.ratios = {
    readFloor: ratio(out.readFloorMs),
    version: ratio(out.versionMs),
    containerByPrefix: ratio(out.containerByPrefixMs),
    containersJson: ratio(out.containersJsonMs),
    containerByName: ratio(out.containerByNameMs),
  };
  out.met = Object.entries(STARTUP_TARGETS).every(([k, t]) => out.ratios[k] <= t);
  const line = (label, ms, r, target) =>
    `${label.padEnd(38)}${ms.toFixed(0).padStart(6)} ms  ${r.toFixed(2)}× node -e 0` +
    (target === undefined ? '' : `  (target ≤ ${target}×${r <= target ? '' : '  [target missed]'})`);
  console.log(`startup node -e 0 (the baseline):     ${nodeMs.toFixed(0).padStart(6)} ms`);
  console.log(line(`floor: bare node reads the ${3 * N} files`, out.readFloorMs, out.ratios.readFloor));
  console.log(line('startup --version', out.versionMs, out.ratios.version, STARTUP_TARGETS.version));
  console.log(
    line(
      `startup containers --json (${N})`,
      out.containersJsonMs,
      out.ratios.containersJson,
      STARTUP_TARGETS.containersJson,
    ),
  );
  console.log(
    line(
      'startup container <12-hex prefix>',
      out.containerByPrefixMs,
      out.ratios.containerByPrefix,
      STARTUP_TARGETS.containerByPrefix,
    ),
  );
  console.log(line('startup container <name>', out.containerByNameMs, out.ratios.containerByName));
  fs.rmSync(root, { recursive: true, force: true });
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (envNote()) console.log(envNote());
  runDockerListingBench();
}
