#!/usr/bin/env node
/**
 * Generates benchmark pool metadata the way a busy Docker host looks, as thin_restore XML, and
 * writes it with `thin_restore` into a sparse 2 GiB file under /tmp (never committed).
 *
 * Topology: 2,000 thin devices = 5 bases + 95 independents + 1,900 snapshots of the bases;
 * `perDev` mapped blocks per device (a hole every 400 virtual blocks); each snapshot overwrites
 * 5 % of its base in runs of 1–8 blocks with freshly allocated data blocks.
 *
 * Variants: `shared` (range mappings, 2,500 blocks/device ≈ 5M mappings), `frag` (same mappings
 * but random data placement, written as single mappings), `xl` (ranges, 10,000 blocks/device ≈ 20M).
 *
 * Usage: node bench/gen-pool.js [shared|frag|xl] [--dir /tmp/dminspect-bench] [--force]
 * Prints the metadata file path. Re-uses an existing file unless --force.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from './common.js';

export const VARIANTS = {
  shared: { perDev: 2500, frag: false, nrDataBlocks: 1 << 20 },
  frag: { perDev: 2500, frag: true, nrDataBlocks: 1 << 20 },
  xl: { perDev: 10000, frag: false, nrDataBlocks: 1 << 22 },
};

const BASES = 5;
const INDEPENDENTS = 95;
const SNAPSHOTS = 1900;
const HOLE_EVERY = 400;

/** Virtual blocks of a device: 0.. skipping every 400th (v % 400 == 399). */
function vblocks(perDev) {
  const v = new Float64Array(perDev);
  let x = 0;
  for (let i = 0; i < perDev; i++) {
    if (x % HOLE_EVERY === HOLE_EVERY - 1) x++;
    v[i] = x++;
  }
  return v;
}

/** Writes the pool XML to `xmlPath`. Returns a summary. */
export function writePoolXml(variant, xmlPath, seed = 42) {
  const cfg = VARIANTS[variant];
  if (!cfg) throw new Error(`unknown variant ${variant}`);
  const rnd = mulberry32(seed);
  const { perDev, nrDataBlocks } = cfg;
  const vb = vblocks(perDev);
  const nDev = BASES + INDEPENDENTS + SNAPSHOTS;
  const distinct = (BASES + INDEPENDENTS) * perDev + SNAPSHOTS * Math.round(perDev * 0.05);
  // Data placement: sequential, or a random permutation of the first nrDataBlocks (frag).
  let alloc;
  if (cfg.frag) {
    const perm = new Uint32Array(nrDataBlocks);
    for (let i = 0; i < nrDataBlocks; i++) perm[i] = i;
    for (let i = nrDataBlocks - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      const t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    let next = 0;
    alloc = () => perm[next++];
  } else {
    let next = 0;
    alloc = () => next++;
  }
  if (distinct > nrDataBlocks) throw new Error('pool too small');

  const fd = fs.openSync(xmlPath, 'w');
  let out = '';
  const emit = (s) => {
    out += s;
    if (out.length > 1 << 20) {
      fs.writeSync(fd, out);
      out = '';
    }
  };
  /** Emits mappings v[i] → d[i] (times t[i]) coalesced into ranges, or singles for frag. */
  const emitMappings = (d, t) => {
    let i = 0;
    while (i < perDev) {
      let j = i + 1;
      if (!cfg.frag) {
        while (j < perDev && vb[j] === vb[j - 1] + 1 && d[j] === d[j - 1] + 1 && t[j] === t[i]) j++;
      }
      if (j - i === 1) emit(`    <single_mapping origin_block="${vb[i]}" data_block="${d[i]}" time="${t[i]}"/>\n`);
      else emit(`    <range_mapping origin_begin="${vb[i]}" data_begin="${d[i]}" length="${j - i}" time="${t[i]}"/>\n`);
      i = j;
    }
  };

  const time = SNAPSHOTS; // each snapshot creation bumped the pool time
  emit(
    `<superblock uuid="" time="${time}" transaction="${nDev + 1}" data_block_size="128" nr_data_blocks="${nrDataBlocks}">\n`,
  );
  const baseData = [];
  const baseSnapTime = new Array(BASES).fill(0);
  for (let s = 0; s < SNAPSHOTS; s++) baseSnapTime[s % BASES] = s + 1;
  let mappings = 0;
  for (let dev = 1; dev <= BASES + INDEPENDENTS; dev++) {
    const d = new Float64Array(perDev);
    for (let i = 0; i < perDev; i++) d[i] = alloc();
    const t = new Float64Array(perDev);
    if (dev <= BASES) baseData.push(d);
    const snapTime = dev <= BASES ? baseSnapTime[dev - 1] : 0;
    emit(
      `  <device dev_id="${dev}" mapped_blocks="${perDev}" transaction="${dev}" creation_time="0" snap_time="${snapTime}">\n`,
    );
    emitMappings(d, t);
    emit('  </device>\n');
    mappings += perDev;
  }
  const overwrite = Math.round(perDev * 0.05);
  for (let s = 0; s < SNAPSHOTS; s++) {
    const dev = BASES + INDEPENDENTS + 1 + s;
    const base = baseData[s % BASES];
    const d = Float64Array.from(base);
    const t = new Float64Array(perDev);
    const ctime = s + 1;
    const touched = new Uint8Array(perDev);
    let done = 0;
    while (done < overwrite) {
      const len = Math.min(1 + Math.floor(rnd() * 8), overwrite - done);
      const start = Math.floor(rnd() * (perDev - len));
      let free = true;
      for (let k = start; k < start + len; k++) if (touched[k]) free = false;
      if (!free) continue;
      for (let k = start; k < start + len; k++) {
        touched[k] = 1;
        d[k] = alloc();
        t[k] = ctime;
      }
      done += len;
    }
    emit(
      `  <device dev_id="${dev}" mapped_blocks="${perDev}" transaction="${dev}" creation_time="${ctime}" snap_time="${ctime}">\n`,
    );
    emitMappings(d, t);
    emit('  </device>\n');
    mappings += perDev;
  }
  emit('</superblock>\n');
  fs.writeSync(fd, out);
  fs.closeSync(fd);
  return { devices: nDev, mappings, distinct };
}

/** Generates (or re-uses) the metadata file of a variant; returns its path. */
export function generatePool(variant, dir = '/tmp/dminspect-bench', force = false) {
  fs.mkdirSync(dir, { recursive: true });
  const meta = path.join(dir, `${variant}.meta`);
  const stamp = `${meta}.ok`;
  if (!force && fs.existsSync(stamp) && fs.existsSync(meta)) return meta;
  const xml = path.join(dir, `${variant}.xml`);
  const t0 = Date.now();
  const summary = writePoolXml(variant, xml);
  fs.rmSync(stamp, { force: true });
  fs.rmSync(meta, { force: true });
  fs.writeFileSync(meta, '');
  fs.truncateSync(meta, 2 * 1024 ** 3);
  const r = spawnSync('thin_restore', ['-i', xml, '-o', meta], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`thin_restore failed: ${r.stderr?.toString() ?? r.error}`);
  fs.rmSync(xml, { force: true });
  fs.writeFileSync(stamp, JSON.stringify(summary));
  process.stderr.write(
    `generated ${variant}: ${summary.mappings} mappings, ${summary.devices} devices in ${((Date.now() - t0) / 1000).toFixed(1)} s → ${meta}\n`,
  );
  return meta;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const force = args.includes('--force');
  const di = args.indexOf('--dir');
  const dir = di >= 0 ? args[di + 1] : '/tmp/dminspect-bench';
  const variants = args.filter((a, i) => !a.startsWith('--') && (di < 0 || i !== di + 1));
  for (const v of variants.length ? variants : ['shared']) console.log(generatePool(v, dir, force));
}
