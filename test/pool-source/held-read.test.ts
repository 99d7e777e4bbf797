/**
 * A held read's task names a module and an exported function that a worker thread imports. bin/dminspect.js runs
 * the esbuild bundle, whose chunks neither keep module names nor export what only they use, so tasks name the tsc
 * build beside it (`distModule`). These tests check, on the built files, that every task the sources name resolves
 * from the bundle's copy of `distModule` to a built module exporting that function.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadTaskModule, taskModule } from '../../src/cli/held-worker.js';
import { serveHeldJobs, serveHeldReads } from '../../src/pool-source/held-read.js';
import { REPO } from '../support/cli.js';

/** Every (module, fn) pair the sources hand to a held read: `distModule('x.js')` with the `fn` beside it. */
function tasksInSources(): Array<{ rel: string; fn: string; file: string }> {
  const out: Array<{ rel: string; fn: string; file: string }> = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts')) {
        const text = fs.readFileSync(p, 'utf8');
        const consts = new Map(
          [...text.matchAll(/const (\w+_MODULE) = distModule\('([^']+)'\)/g)].map((m) => [m[1]!, m[2]!]),
        );
        for (const m of text.matchAll(/module: (?:distModule\('([^']+)'\)|(\w+_MODULE)),\s*fn: '(\w+)'/g)) {
          const rel = m[1] ?? consts.get(m[2]!) ?? resolveConst(m[2]!);
          out.push({ rel, fn: m[3]!, file: path.relative(REPO, p) });
        }
      }
    }
  };
  walk(path.join(REPO, 'src'));
  return out;
}

/** A `*_MODULE` constant defined in another source file. */
function resolveConst(name: string): string {
  for (const f of ['src/model/listing.ts', 'src/model/container-usage.ts']) {
    const m = fs
      .readFileSync(path.join(REPO, f), 'utf8')
      .match(new RegExp(`const ${name} = distModule\\('([^']+)'\\)`));
    if (m) return m[1]!;
  }
  throw new Error(`no definition of ${name}`);
}

describe('held reads from the bundle (what bin/dminspect.js runs)', () => {
  it('every task resolves, through the bundle’s distModule, to a built module that exports its function', async () => {
    const bundle = path.join(REPO, 'dist/bundle/main.cjs');
    if (!fs.existsSync(bundle)) throw new Error('run npm run build first');
    // the bundle's own distModule, with the import.meta.url the bundle's banner gives it (its file's URL)
    const text = fs.readFileSync(bundle, 'utf8');
    const source = /^function distModule\(rel\) \{\n[^\n]*\n\}$/m.exec(text)?.[0];
    expect(source, 'the bundle holds distModule').toBeDefined();
    expect(text).toContain("const __dmiImportMetaUrl = require('node:url').pathToFileURL(__filename).href;");
    const distModule = new Function('__dmiImportMetaUrl', `${source!}\nreturn distModule;`)(
      pathToFileURL(bundle).href,
    ) as (rel: string) => string;
    const tasks = tasksInSources();
    // pool, container, devices, deleted, snapshot's id read: each names its task
    expect(tasks.map((t) => t.fn).sort()).toEqual(
      ['heldContainerUsage', 'heldDeleted', 'heldDeviceUsage', 'heldPoolAudit', 'heldThinIds'].sort(),
    );
    for (const t of tasks) {
      const url = distModule(t.rel);
      expect(url, `${t.file}: ${t.rel}`).toBe(pathToFileURL(path.join(REPO, 'dist', t.rel)).href);
      const m = (await import(url)) as Record<string, unknown>;
      expect(typeof m[t.fn], `${t.rel} exports ${t.fn}`).toBe('function');
    }
  });

  it('the single-file binary’s worker (cli/held-worker.ts) bundles every task’s module, found by its URL', async () => {
    for (const t of tasksInSources()) {
      for (const url of [pathToFileURL(path.join(REPO, 'dist', t.rel)).href, `file:///$bunfs/root/${t.rel}`]) {
        const load = taskModule(url);
        expect(load, `${t.file}: ${t.rel} is in cli/held-worker.ts's table`).not.toBeNull();
        const m = await load!();
        expect(typeof m[t.fn], `${t.rel} exports ${t.fn}`).toBe('function');
      }
    }
    expect(taskModule('file:///elsewhere/audit/lives.js')).toBeNull();
    await expect(loadTaskModule('file:///elsewhere/audit/lives.js')).rejects.toThrow(
      'no held-read task module for file:///elsewhere/audit/lives.js',
    );
    expect(typeof (await loadTaskModule('file:///$bunfs/root/audit/live.js')).heldPoolAudit).toBe('function');
  });
});

describe('the worker loop (serveHeldJobs), on a stand-in port', () => {
  // the loop both workers run: Node's evaluates its source text, the binary's entry calls it
  function port() {
    const replies: unknown[] = [];
    let listener: ((job: never) => void) | null = null;
    return {
      replies,
      on: (_: 'message', l: (job: never) => void) => (listener = l),
      postMessage: (r: unknown) => replies.push(r),
      send: async (job: object) => {
        await (listener as unknown as (j: object) => Promise<void>)(job);
      },
    };
  }
  const job = { module: 'm', args: [2], view: 3, delayMs: 0 };

  it('calls fn(...args, view) and posts the value with the job id', async () => {
    const p = port();
    serveHeldJobs(p, async () => ({ f: (a: number, v: number) => a * 10 + v }));
    await p.send({ ...job, id: 7, fn: 'f' });
    expect(p.replies).toEqual([{ id: 7, ok: true, value: 23 }]);
  });

  it('a DmiError crosses as its code, message and details; any other error as its message', async () => {
    const p = port();
    const { DmiError } = await import('../../src/errors.js');
    serveHeldJobs(p, async () => ({
      dmi: () => {
        throw new DmiError('CONFLICT', 'held elsewhere', { pool: 'p' });
      },
      plain: () => {
        throw new TypeError('boom');
      },
    }));
    await p.send({ ...job, id: 1, fn: 'dmi' });
    await p.send({ ...job, id: 2, fn: 'plain' });
    await p.send({ ...job, id: 3, fn: 'missing' });
    expect(p.replies).toEqual([
      { id: 1, ok: false, error: { dmi: true, code: 'CONFLICT', message: 'held elsewhere', details: { pool: 'p' } } },
      { id: 2, ok: false, error: { dmi: false, code: undefined, message: 'boom', details: undefined } },
      {
        id: 3,
        ok: false,
        error: { dmi: false, code: undefined, message: 'm has no function missing', details: undefined },
      },
    ]);
  });

  it('serveHeldReads refuses to run outside a worker thread (it would wait on a port that is not there)', () => {
    let loads = 0;
    expect(() =>
      serveHeldReads(async () => {
        loads++;
        return {};
      }),
    ).toThrow('serveHeldReads: not in a worker thread');
    expect(loads).toBe(0);
  });

  it('its source text runs on its own (it names nothing outside itself)', async () => {
    const p = port();
    const loop = new Function(`return (${serveHeldJobs.toString()})`)() as typeof serveHeldJobs;
    loop(p, async () => ({ f: (a: number, v: number) => a + v }));
    await p.send({ ...job, id: 9, fn: 'f' });
    expect(p.replies).toEqual([{ id: 9, ok: true, value: 5 }]);
  });
});
