#!/usr/bin/env node
// Benchmark for issue 6: a generated Docker root with 10,000 containers (layerdb entries and device records),
// `dminspect containers --json` and `dminspect container <prefix>` wall time, median of several runs, run as a
// user would (the built bin in a fresh process). Baseline in the same run: `node -e 0` (process start-up).
// Usage: node bench/docker-listing.js [--containers N] [--runs R]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildV2Root } from '../scripts/docker-root-builder.js';
import { median } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.join(here, '..', 'bin', 'dminspect.js');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--containers', 10000);
const RUNS = arg('--runs', 7);

function time(argv) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 1 << 30 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

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
  const res = { node: [], list: [], byPrefix: [], byName: [] };
  let listed = 0;
  for (let i = 0; i < RUNS; i++) {
    res.node.push(time([process.execPath, '-e', '0']).ms);
    const l = time([process.execPath, bin, 'containers', '--json', '--root', root]);
    res.list.push(l.ms);
    listed = JSON.parse(l.stdout).containers.length;
    const p = time([process.execPath, bin, 'container', prefix, '--json', '--root', root]);
    if (JSON.parse(p.stdout).id !== target.id) throw new Error('wrong container');
    res.byPrefix.push(p.ms);
    res.byName.push(time([process.execPath, bin, 'container', target.name, '--json', '--root', root]).ms);
  }
  if (listed !== N) throw new Error(`listed ${listed} containers, expected ${N}`);
  const out = {
    containers: N,
    runs: RUNS,
    nodeStartupMs: median(res.node),
    containersJsonMs: median(res.list),
    containerByPrefixMs: median(res.byPrefix),
    containerByNameMs: median(res.byName),
  };
  console.log(`node -e 0 (start-up baseline):       ${out.nodeStartupMs.toFixed(0)} ms`);
  console.log(`containers --json (${N}):         ${out.containersJsonMs.toFixed(0)} ms   target < 1000 ms`);
  console.log(`container <12-hex prefix>:           ${out.containerByPrefixMs.toFixed(0)} ms   target < 300 ms`);
  console.log(`container <name>:                    ${out.containerByNameMs.toFixed(0)} ms`);
  fs.rmSync(root, { recursive: true, force: true });
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runDockerListingBench();
