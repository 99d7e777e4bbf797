/**
 * Test helpers for the Prometheus metrics: the real promtool and prometheus-node-exporter (Debian packages
 * `prometheus` and `prometheus-node-exporter`), and a small exposition-format parser to read values back.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { requireTool } from '../support/tools.js';
import { tmpDir as makeTmpDir } from '../support/cli.js';

function which(names: string[]): string | null {
  for (const n of names) {
    for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/bin', '/usr/sbin'])) {
      const p = path.join(dir, n);
      try {
        fs.accessSync(p, fs.constants.X_OK);
        return p;
      } catch {
        // next
      }
    }
  }
  return null;
}

export const PROMTOOL = requireTool(
  which(['promtool']),
  !which(['promtool']),
  'promtool (prometheus) is not installed',
);
export const NODE_EXPORTER = requireTool(
  which(['prometheus-node-exporter', 'node_exporter']),
  !which(['prometheus-node-exporter', 'node_exporter']),
  'prometheus-node-exporter is not installed',
);
export const PROMTOOL_SKIP = 'promtool is not installed (apt-get install prometheus): skipping the promtool checks';
export const NODE_EXPORTER_SKIP =
  'prometheus-node-exporter is not installed (apt-get install prometheus-node-exporter): skipping the node_exporter scrape test';

/** `promtool check metrics` of an exposition: exit status and everything it printed (nothing when clean). */
export function promtoolCheckMetrics(text: string): { code: number; output: string } {
  const r = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}`.trim() };
}

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Parsed {
  samples: ParsedSample[];
  help: Map<string, string>;
  type: Map<string, string>;
}

function unescapeLabel(v: string): string {
  return v.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

/** Parses the text exposition format (0.0.4) strictly enough for tests; throws on a line it does not understand. */
export function parseExposition(text: string): Parsed {
  const out: Parsed = { samples: [], help: new Map(), type: new Map() };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      (m[1] === 'HELP' ? out.help : out.type).set(m[2]!, m[3]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (\S+)(?: -?\d+)?$/.exec(
      line,
    );
    if (!m) throw new Error(`not an exposition line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = unescapeLabel(l[2]!);
    out.samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The samples of one metric whose labels include `match`. */
export function series(p: Parsed, name: string, match: Record<string, string> = {}): ParsedSample[] {
  return p.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** The single value of one metric with labels including `match`; throws when not exactly one. */
export function value(p: Parsed, name: string, match: Record<string, string> = {}): number {
  const s = series(p, name, match);
  if (s.length !== 1) throw new Error(`${name}${JSON.stringify(match)}: ${s.length} series`);
  return s[0]!.value;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface Exporter {
  url: string;
  proc: ChildProcess;
  log: () => string;
  stop: () => Promise<void>;
}

/**
 * Starts the real node_exporter on 127.0.0.1 (a free port) with only the textfile collector reading `dir`, and
 * waits until /metrics answers. Retries on another port if the one picked was taken meanwhile.
 */
export async function startNodeExporter(dir: string): Promise<Exporter> {
  let lastLog = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    let log = '';
    const proc = spawn(
      NODE_EXPORTER!,
      [
        `--web.listen-address=127.0.0.1:${port}`,
        '--collector.disable-defaults',
        '--collector.textfile',
        `--collector.textfile.directory=${dir}`,
        '--web.disable-exporter-metrics',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc.stdout!.on('data', (b: Buffer) => (log += b.toString()));
    proc.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    let exited = false;
    const exitedP = new Promise<void>((resolve) => proc.once('exit', () => ((exited = true), resolve())));
    const stop = async () => {
      if (!exited) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exitedP;
        clearTimeout(t);
      }
    };
    const url = `http://127.0.0.1:${port}/metrics`;
    const deadline = Date.now() + 15_000;
    while (!exited && Date.now() < deadline) {
      try {
        const r = await fetch(url);
        if (r.ok) return { url, proc, log: () => log, stop };
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await stop();
    lastLog = log;
  }
  throw new Error(`node_exporter did not start: ${lastLog}`);
}

export async function scrape(url: string): Promise<string> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: ${r.status}`);
  return r.text();
}

/** A scratch directory readable by node_exporter's user (0755). */
export function tmpDir(prefix = 'dminspect-metrics-'): string {
  return makeTmpDir(prefix, 0o755);
}
