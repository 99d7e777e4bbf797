/** Shared rendering: tables (cli-table3), key/value blocks, JSON, problems. */
import type TableCtor from 'cli-table3';
import type { Problem } from '../docker/records.js';

import type { Out } from './output.js';

export { stdio, type Out } from './output.js';

let Table: typeof TableCtor | null = null;

/**
 * Loads the table renderer. `main()` awaits it before any run without `--json`, so a JSON run never loads
 * cli-table3 (issue 15, start-up) and `table()` stays synchronous for the renderers.
 */
export async function loadTables(): Promise<void> {
  Table ??= (await import('cli-table3')).default;
}

/** Pieces of output gathered into one write (each ends at a line end, so `io.out` adds none). */
const JSON_CHUNK = 64 * 1024;

/**
 * Writes `JSON.stringify(value, null, 2)`, the same bytes, in pieces of about 64 KiB: an object's array members are
 * written element by element, so a listing of 10,000 containers is never one 5 MB string and then one 5 MB buffer
 * (issue 15: every page touched is a fault that costs on this machine kind). Anything else is written whole.
 */
export function printJson(io: Out, value: unknown): void {
  if (!isPlainObject(value)) {
    io.out(JSON.stringify(value, null, 2));
    return;
  }
  let pending = '';
  const put = (s: string, lineEnds: boolean): void => {
    pending += s;
    if (lineEnds && pending.length >= JSON_CHUNK) {
      io.out(pending);
      pending = '';
    }
  };
  let members = 0;
  for (const key of Object.keys(value)) {
    const v = value[key];
    if (Array.isArray(v) && v.length > 0 && !hasToJson(v)) {
      put(`${members++ === 0 ? '{' : ','}\n  ${JSON.stringify(key)}: [\n`, true);
      for (let i = 0; i < v.length; i++) {
        const el = (JSON.stringify(v[i], null, 2) as string | undefined) ?? 'null';
        put(`    ${el.replace(/\n/g, '\n    ')}${i < v.length - 1 ? ',' : ''}\n`, true);
      }
      put('  ]', false);
      continue;
    }
    const text = JSON.stringify(v, null, 2) as string | undefined; // undefined: the key is left out
    if (text === undefined) continue;
    put(`${members++ === 0 ? '{' : ','}\n  ${JSON.stringify(key)}: ${text.replace(/\n/g, '\n  ')}`, false);
  }
  put(members === 0 ? '{}' : '\n}', false);
  io.out(pending);
}

function hasToJson(v: object): boolean {
  return typeof (v as { toJSON?: unknown }).toJSON === 'function';
}

/** An object literal's kind, which JSON.stringify writes member by member (no toJSON, no boxed primitive). */
function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || hasToJson(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export function table(head: string[], rows: (string | number | null | undefined)[][]): string {
  if (Table === null) throw new Error('table() before loadTables()');
  const t = new Table({
    head,
    style: { head: [], border: [], compact: true },
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '  ',
    },
  });
  for (const r of rows) t.push(r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  return t
    .toString()
    .split('\n')
    .map((l) => l.replace(/^ /, '').trimEnd())
    .join('\n');
}

/** Aligned "key: value" lines. */
export function keyValues(pairs: [string, string | number | boolean | null | undefined][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs
    .map(([k, v]) => `${(k + ':').padEnd(w + 1)} ${v === null || v === undefined ? '-' : String(v)}`)
    .join('\n');
}

export function printProblems(io: Out, problems: Problem[]): void {
  for (const p of problems) io.err(`warning: ${p.message}`);
}

export function short(id: string | null | undefined, n = 12): string {
  return id ? id.slice(0, n) : '-';
}

/** Findings as the commands print them: a count, then each one's severity, message and remedy. */
export function renderFindings(findings: { severity: string; message: string; remedy?: string }[]): string[] {
  if (findings.length === 0) return ['findings: none'];
  const out = [`findings (${findings.length}):`];
  for (const f of findings) {
    out.push(`${f.severity.toUpperCase().padEnd(8)} ${f.message}`);
    if (f.remedy) out.push(`         remedy: ${f.remedy}`);
  }
  return out;
}
