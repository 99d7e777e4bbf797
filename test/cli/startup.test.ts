/**
 * Issue 15, start-up: each command loads only what it uses. Runs the built bin/dminspect.js (the bundle) as a user
 * would, with a preload that records every ES module Node loads (module hooks) and, at exit, the CommonJS modules
 * in require's cache (the CRC addon is loaded by require). The wall time itself is a benchmark
 * (bench/docker-listing.js), not a test.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildV2Root } from '../../scripts/docker-root-builder.js';
import { BIN, REPO, SAMPLE, tmpDir } from '../support/cli.js';

let dir = '';
let preload = '';
/** The code caches' file names (bin/bundle.js: per output mode, named after the CPU architecture). */
const JSON_CACHE = `main.cjs.${process.arch}.cache`;
const TEXT_CACHE = `main.cjs.${process.arch}.text.cache`;
let runs = 0;

beforeAll(() => {
  if (!fs.existsSync(path.join(REPO, 'dist/bundle/main.cjs'))) throw new Error('run npm run build first');
  dir = tmpDir('dminspect-startup-');
  // The hooks run on their own thread: what they write to stderr can be lost when the process exits, so each line is
  // appended to a file, synchronously, before the module loads (the run's log file comes in DMI_LOAD_LOG).
  const hooks = path.join(dir, 'hooks.mjs');
  fs.writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';
let log = '';
export async function initialize(data) { log = data.log; }
export async function load(url, context, next) {
  if (url.startsWith('file:')) appendFileSync(log, '@@esm ' + url + '\\n');
  return next(url, context);
}\n`,
  );
  preload = path.join(dir, 'preload.mjs');
  fs.writeFileSync(
    preload,
    `import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';
const log = process.env.DMI_LOAD_LOG;
register(pathToFileURL(${JSON.stringify(hooks)}), { data: { log } });
const cache = createRequire(import.meta.url).cache;
process.on('exit', () => {
  for (const f of Object.keys(cache)) appendFileSync(log, '@@cjs ' + f + '\\n');
  for (const m of process.moduleLoadList) if (m.startsWith('NativeModule ')) appendFileSync(log, '@@builtin ' + m.slice(13) + '\\n');
});\n`,
  );
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * What one run loaded: ES module files and CommonJS files (repo-relative), and the source modules of the bundle
 * (dist/bundle/main.cjs, compiled by bin/bundle.js) that ran: esbuild wraps each module's code in a function named
 * after its file (`"dist/thin/pool.js"() {...}`, `"node_modules/commander/index.js"(exports, module) {...}`), called
 * when the module is first imported, and V8's coverage (NODE_V8_COVERAGE) counts the calls.
 */
function loaded(...args: string[]): {
  code: number;
  esm: string[];
  cjs: string[];
  /** V8 ran code of the bundle (dist/bundle/main.vm.js, the file bin/bundle.js compiles) */
  bundle: boolean;
  sources: string[];
  builtins: string[];
} {
  const log = path.join(dir, `load-${++runs}.log`);
  const coverage = path.join(dir, `coverage-${runs}`);
  const r = spawnSync(process.execPath, ['--import', preload, BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, DMI_LOAD_LOG: log, NODE_V8_COVERAGE: coverage },
  });
  const rel = (f: string): string => path.relative(REPO, f.startsWith('file:') ? new URL(f).pathname : f);
  const lines = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n') : [];
  const esm = lines.filter((l) => l.startsWith('@@esm ')).map((l) => rel(l.slice(6)));
  type Coverage = {
    result: Array<{ url: string; functions: Array<{ functionName: string; ranges: Array<{ count: number }> }> }>;
  };
  const scripts = (fs.existsSync(coverage) ? fs.readdirSync(coverage) : [])
    .flatMap((f) => (JSON.parse(fs.readFileSync(path.join(coverage, f), 'utf8')) as Coverage).result)
    .filter((sc) => sc.url.startsWith('file:') && rel(sc.url) === 'dist/bundle/main.vm.js');
  const sources = scripts
    .flatMap((sc) => sc.functions)
    .filter((f) => f.ranges[0]!.count > 0)
    // a symlinked node_modules (a git worktree's) shows as `../<elsewhere>/node_modules/...`
    .map((f) => /^(?:\S*?\/)?((?:dist|node_modules)\/\S+\.(?:js|mjs|cjs|json))$/.exec(f.functionName)?.[1])
    .filter((f) => f !== undefined);
  return {
    code: r.status ?? -1,
    esm,
    cjs: lines.filter((l) => l.startsWith('@@cjs ')).map((l) => rel(l.slice(6))),
    bundle: scripts.length > 0,
    builtins: lines.filter((l) => l.startsWith('@@builtin ')).map((l) => l.slice(10)),
    sources: [...new Set(sources)],
  };
}

const fromPackage = (files: string[], name: string): string[] =>
  files.filter((f) => f.includes(`node_modules/${name}/`));
const commandsIn = (sources: string[]): string[] => sources.filter((f) => f.startsWith('dist/cli/commands/'));

describe('start-up: a run loads what its command uses', () => {
  it('bin/dminspect.js runs the bundle, not the per-file tsc output, and no ES module of ours', () => {
    const r = loaded('containers', '--json', '--root', SAMPLE);
    expect(r.code).toBe(0);
    expect(r.bundle).toBe(true);
    expect(r.sources).toContain('dist/cli/commands/containers.js');
    // the bundle is compiled by bin/bundle.js (vm.Script): no file of dist/ goes through Node's module loaders
    expect([...r.esm, ...r.cjs].filter((f) => f.startsWith('dist/'))).toEqual([]);
    expect(r.cjs).toContain('bin/bundle.js');
  });

  it('the code caches the build made (one per output mode) are taken by the Node that made them (another rejects them), and a run writes nothing beside the bundle', () => {
    const bundle = path.join(REPO, 'dist/bundle');
    const before = fs.readdirSync(bundle).map((f) => [f, fs.statSync(path.join(bundle, f)).mtimeMs]);
    expect(before.map(([f]) => f)).toEqual(expect.arrayContaining([JSON_CACHE, TEXT_CACHE]));
    // all ASCII, so V8 holds the source as a one-byte string (scripts/build.js)
    for (const f of ['main.cjs', 'main.vm.js'])
      expect(/[^ -~\t\n\r]/.exec(fs.readFileSync(path.join(bundle, f), 'latin1')), f).toBeNull();
    // the mode a run's arguments pick (bin/dminspect.js passes process.argv), and whether V8 took that mode's cache;
    // one process per run: a second vm.Script of the same source in one process comes from V8's in-memory compilation
    // cache and says nothing of the cache file
    const probe = (args: string[]): string =>
      spawnSync(
        process.execPath,
        [
          '-e',
          `const b = require(${JSON.stringify(path.join(REPO, 'bin/bundle.js'))});
const mode = b.cacheMode(['node', 'dminspect', ...${JSON.stringify(args)}]);
console.log(mode, b.loadBundle(false, mode).cacheRejected);`,
        ],
        { encoding: 'utf8' },
      ).stdout.trim();
    // CI builds with one Node and runs these tests with others: a cache is taken only by the Node that made it
    const madeBy = (f: string) =>
      JSON.parse(fs.readFileSync(path.join(bundle, `${f}.json`), 'utf8')) as { node: string; v8: string };
    for (const f of [JSON_CACHE, TEXT_CACHE])
      expect(madeBy(f), f).toEqual({ node: madeBy(JSON_CACHE).node, v8: madeBy(JSON_CACHE).v8 });
    const { node, v8 } = madeBy(JSON_CACHE);
    const sameNode = node === process.version && v8 === process.versions.v8;
    expect(
      [
        ['containers', '--json'],
        ['container', 'abc'],
        ['pool', '--json', '--root', 'r'],
      ].map(probe),
      `caches made by ${node}, run by ${process.version}`,
    ).toEqual([`json ${!sameNode}`, `text ${!sameNode}`, `json ${!sameNode}`]);
    // the two caches are not the same: each holds what its own mode's training runs compiled
    expect(fs.readFileSync(path.join(bundle, TEXT_CACHE))).not.toEqual(fs.readFileSync(path.join(bundle, JSON_CACHE)));
    // with other V8 flags (as another Node's V8) the cache is rejected and the run gives the same output
    const flagged = spawnSync(
      process.execPath,
      ['--max-semi-space-size=7', BIN, 'containers', '--json', '--root', SAMPLE],
      {
        encoding: 'utf8',
      },
    );
    const plain = spawnSync(process.execPath, [BIN, 'containers', '--json', '--root', SAMPLE], { encoding: 'utf8' });
    expect([flagged.status, plain.status]).toEqual([0, 0]);
    expect(flagged.stdout).toBe(plain.stdout);
    // the same for a text run (the text cache)
    const flaggedText = spawnSync(process.execPath, ['--max-semi-space-size=7', BIN, 'containers', '--root', SAMPLE], {
      encoding: 'utf8',
    });
    const plainText = spawnSync(process.execPath, [BIN, 'containers', '--root', SAMPLE], { encoding: 'utf8' });
    expect([flaggedText.status, plainText.status]).toEqual([0, 0]);
    expect(plainText.stdout).toContain('CONTAINER');
    expect(flaggedText.stdout).toBe(plainText.stdout);
    const rejected = spawnSync(
      process.execPath,
      [
        '--max-semi-space-size=7',
        '-e',
        `console.log(require(${JSON.stringify(path.join(REPO, 'bin/bundle.js'))}).loadBundle().cacheRejected)`,
      ],
      { encoding: 'utf8' },
    );
    expect(rejected.stdout.trim()).toBe('true');
    expect(fs.readdirSync(bundle).map((f) => [f, fs.statSync(path.join(bundle, f)).mtimeMs])).toEqual(before);
  });

  it('a run hands V8 the cache of its output mode: with --json the JSON one, without it the text one', () => {
    // a CommonJS preload that records the cachedData bin/bundle.js passes to vm.Script, and whether V8 took it
    const spy = path.join(dir, 'script-spy.cjs');
    fs.writeFileSync(
      spy,
      `const vm = require('node:vm');
const Script = vm.Script;
vm.Script = class extends Script {
  constructor(source, options) {
    super(source, options);
    const c = options && options.cachedData;
    if (c) require('node:fs').writeSync(2, '@@cache ' + c.length + ' ' + this.cachedDataRejected + '\\n');
  }
};\n`,
    );
    const bundle = path.join(REPO, 'dist/bundle');
    const size = (f: string) => fs.statSync(path.join(bundle, f)).size;
    expect(size(JSON_CACHE)).not.toBe(size(TEXT_CACHE));
    const handed = (...args: string[]): string => {
      const r = spawnSync(process.execPath, ['-r', spy, BIN, ...args], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('@@cache '));
      expect(lines).toHaveLength(1);
      return lines[0]!.split(' ')[1]!;
    };
    expect(handed('container', 'web', '--json', '--no-live', '--root', SAMPLE)).toBe(String(size(JSON_CACHE)));
    expect(handed('container', 'web', '--no-live', '--root', SAMPLE)).toBe(String(size(TEXT_CACHE)));
    expect(handed('containers', '--root', SAMPLE)).toBe(String(size(TEXT_CACHE)));
  });

  it('from the cached bundle, the external modules still import (dockerode here; execa the same way)', () => {
    // Node 20's code cache drops what an import() in a restored function needs ("A dynamic import callback was not
    // specified"): the bundle's imports of dockerode and execa go through bin/bundle.js (scripts/build.js)
    const r = spawnSync(
      process.execPath,
      [BIN, 'container', 'web', '--root', SAMPLE, '--host', 'tcp://127.0.0.1:1', '--json'],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).daemon).toBeNull(); // dockerode loaded, asked 127.0.0.1:1, refused
    // and from the text mode's cache
    const text = spawnSync(
      process.execPath,
      [BIN, 'container', 'web', '--root', SAMPLE, '--host', 'tcp://127.0.0.1:1'],
      {
        encoding: 'utf8',
      },
    );
    expect(text.stderr).toBe('');
    expect(text.status).toBe(0);
    const bundle = fs.readFileSync(path.join(REPO, 'dist/bundle/main.cjs'), 'utf8');
    expect(bundle.match(/__dmiImport\("(dockerode|execa)"\)/g)?.sort()).toEqual([
      '__dmiImport("dockerode")',
      '__dmiImport("execa")',
    ]);
  });

  it('--version alone loads one CommonJS file of ours (the version bundle): no ES module, command or format reader', () => {
    const r = loaded('--version');
    expect(r.code).toBe(0);
    const ours = [...r.esm, ...r.cjs].filter((f) => !f.startsWith('..') && !f.includes('node_modules/'));
    expect([...new Set(ours)].sort()).toEqual(['bin/dminspect.js', 'dist/bundle/version.cjs']);
    // not the ES module bundle (the probe's --import runs the entry itself through the ES module loader, and newer
    // Node versions pass required files through the same hooks)
    expect(r.esm.filter((f) => f.startsWith('dist/') && f !== 'dist/bundle/version.cjs')).toEqual([]);
    // what the version bundle holds: the build facts and the CRC choice, nothing else
    const inside = fs.readFileSync(path.join(REPO, 'dist/bundle/version.cjs'), 'utf8').match(/^\/\/ \S+$/gm) ?? [];
    expect([...new Set(inside.map((m) => m.replace(/^\/\/ (?:\S*?\/)?(dist\/)/, '$1')))].sort()).toEqual([
      'dist/util/build-info.js',
      'dist/util/crc32c.js',
    ]);
    expect(
      [...r.esm, ...r.cjs].filter((f) => /node_modules\/(commander|cli-table3|dockerode|execa)\//.test(f)),
    ).toEqual([]);
    const all = loaded('--help');
    expect(all.code).toBe(0);
    expect(commandsIn(all.sources).length).toBeGreaterThan(5); // --help registers every command: the control
  });

  it('--version and -V alone never load commander, and print what commander prints for the option', () => {
    for (const flag of ['--version', '-V']) {
      const r = loaded(flag);
      expect(r.code).toBe(0);
      expect(fromPackage(r.sources, 'commander')).toEqual([]);
    }
    // the control: with another argument the option goes through commander, which the probe sees loaded
    const viaCommander = loaded('--debug', '--version');
    expect(viaCommander.code).toBe(0);
    expect(fromPackage(viaCommander.sources, 'commander').length).toBeGreaterThan(0);
    const fast = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' });
    const short = spawnSync(process.execPath, [BIN, '-V'], { encoding: 'utf8' });
    const slow = spawnSync(process.execPath, [BIN, '--debug', '--version'], { encoding: 'utf8' });
    expect(slow.status).toBe(0);
    expect(slow.stdout).toMatch(/^dminspect \d+\.\d+\.\d+\nruntime: /);
    expect(fast.stdout).toBe(slow.stdout);
    expect(short.stdout).toBe(slow.stdout);
    expect([fast.status, short.status, fast.stderr, short.stderr]).toEqual([0, 0, '', '']);
  });

  it('containers --json loads its own command only, and neither tables, the daemon client, execa nor the CRC addon', () => {
    const r = loaded('containers', '--json', '--root', SAMPLE);
    expect(r.code).toBe(0);
    expect(commandsIn(r.sources)).toEqual(['dist/cli/commands/containers.js']);
    // the Docker readers only: no thin-metadata reader (its id limit aside), no pool location, no live-pool machinery
    const pool = r.sources.filter((f) => /^dist\/(thin|lvm|pool-source|dm)\//.test(f));
    expect(pool.filter((f) => f !== 'dist/thin/details.js')).toEqual([]);
    expect(r.sources.filter((f) => f.startsWith('dist/docker/')).length).toBeGreaterThan(3);
    // the images are read for their names: no chain id is computed, so node:crypto is not loaded (devices: the control)
    expect(r.builtins).not.toContain('crypto');
    // commander's require of node:child_process is a stand-in in the bundle (scripts/build.js): no process module
    expect(r.builtins).not.toContain('child_process');
    const devices = loaded('devices', '--json', '--root', SAMPLE);
    expect(devices.code).toBe(0);
    expect(devices.builtins).toContain('crypto');
    expect(fromPackage(r.sources, 'cli-table3')).toEqual([]);
    expect(fromPackage(r.esm, 'dockerode')).toEqual([]);
    expect(fromPackage(r.esm, 'execa')).toEqual([]);
    expect(r.cjs.filter((f) => f.includes('@node-rs'))).toEqual([]);
    const text = loaded('containers', '--root', SAMPLE); // the control: a table run loads cli-table3
    expect(text.code).toBe(0);
    expect(fromPackage(text.sources, 'cli-table3').length).toBeGreaterThan(0);
  });

  it('node:v8 (the young-generation flag) loads for the bulk commands only, node:worker_threads only when a thread starts', () => {
    // loaded()'s module hooks run on a thread of their own (they load node:worker_threads): a CommonJS preload that
    // lists the built-in modules at exit, nothing else
    const list = path.join(dir, 'builtins.cjs');
    fs.writeFileSync(
      list,
      `process.on('exit', () => require('node:fs').writeSync(2, '@@' + JSON.stringify(process.moduleLoadList) + '\\n'));\n`,
    );
    const builtins = (args: string[], env: Record<string, string> = {}): string[] => {
      const r = spawnSync(process.execPath, ['-r', list, BIN, ...args], {
        encoding: 'utf8',
        env: { ...process.env, ...env },
      });
      expect(r.status, r.stderr).toBe(0);
      // a worker thread runs the preload too: the main thread's list is the one without the worker's own module
      const lists = r.stderr
        .split('\n')
        .filter((l) => l.startsWith('@@'))
        .map((l) => JSON.parse(l.slice(2)) as string[]);
      const main = lists.filter((l) => !l.includes('NativeModule internal/process/worker_thread_only'));
      expect(main).toHaveLength(1);
      return main[0]!.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13));
    };
    const one = builtins(['container', 'web', '--json', '--root', SAMPLE]);
    expect(one).not.toContain('v8');
    expect(one).not.toContain('worker_threads');
    // the sample's pool is small: its walk runs on this thread
    const poolArgs = ['pool', '--json', '--no-live', '--root', SAMPLE];
    const pool = builtins(poolArgs);
    expect(pool).not.toContain('worker_threads');
    // the controls: the bulk commands set the flag (on the V8 versions bin/dminspect.js knows it on); a walk in two
    // threads loads node:worker_threads (DMINSPECT_USAGE_WORKER=only: thin/usage.ts)
    expect(builtins(poolArgs, { DMINSPECT_USAGE_WORKER: 'only' })).toContain('worker_threads');
    // an export hashes on this thread below 64 MiB: no sha256 worker is started for it; a larger one starts it
    // (the sample has no data file: a sparse one of the pool's size, 16,384 blocks of 64 KiB, reads as zeros)
    const data = path.join(dir, 'data');
    fs.writeFileSync(data, '');
    fs.truncateSync(data, 16384 * 65536);
    const small = path.join(dir, 'small.img');
    const large = path.join(dir, 'large.img');
    const exportArgs = (image: string, size: number) => [
      'export',
      'web',
      image,
      '--size',
      String(size),
      '--data',
      data,
      '--json',
      '--root',
      SAMPLE,
    ];
    expect(builtins(exportArgs(small, 65536))).not.toContain('worker_threads');
    expect(builtins(exportArgs(large, 64 * 1024 * 1024))).toContain('worker_threads');
    for (const f of [data, small, large]) fs.rmSync(f);
    const v8Major = Number(process.versions.v8.split('.')[0]);
    if (v8Major >= 11 && v8Major <= 13) {
      expect(builtins(['containers', '--json', '--root', SAMPLE])).toContain('v8');
      expect(pool).toContain('v8');
    }
  });

  it('container <prefix> on a root with no pool to read loads no pool reader; on the sample (a pool) it does', () => {
    const root = path.join(dir, 'no-pool');
    const built = buildV2Root(root, {
      images: [{ name: 'busybox:latest', layers: ['b'] }],
      containers: [{ name: 'web', image: 'busybox:latest', state: 'running' }],
    }) as { containers: Array<{ id: string }> };
    const prefix = built.containers[0]!.id.slice(0, 12);
    const r = loaded('container', prefix, '--json', '--root', root);
    expect(r.code).toBe(0);
    expect(commandsIn(r.sources)).toEqual(['dist/cli/commands/container.js']);
    // no thin/ or lvm/ reader (the id limit aside), no pool opening, no live-pool machinery, no usage module
    const readers = r.sources.filter((f) => /^dist\/(thin|lvm|pool-source)\//.test(f) || f.endsWith('/usage.js'));
    expect(readers.filter((f) => f !== 'dist/thin/details.js')).toEqual(['dist/pool-source/presence.js']);
    expect(r.sources).not.toContain('dist/model/container-usage.js');
    expect(fromPackage(r.esm, 'execa')).toEqual([]);
    // the control: the sample has a loop-lvm pool, whose usage the same command reads
    const pooled = loaded(
      'container',
      fs.readdirSync(path.join(SAMPLE, 'containers'))[0]!.slice(0, 12),
      '--json',
      '--root',
      SAMPLE,
    );
    expect(pooled.code).toBe(0);
    expect(pooled.sources).toEqual(
      expect.arrayContaining(['dist/model/container-usage.js', 'dist/pool-source/index.js', 'dist/thin/pool.js']),
    );
  });

  it('pool --json loads the CRC addon (it checks metadata blocks): the probe sees what is loaded', () => {
    const r = loaded('pool', '--json', '--root', SAMPLE);
    expect(r.code).toBe(0);
    expect(r.cjs.filter((f) => f.includes('@node-rs')).length).toBeGreaterThan(0);
    expect(fromPackage(r.esm, 'dockerode')).toEqual([]);
  });
});
