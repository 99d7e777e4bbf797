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

/** Elements of a large array turned into text at a time (a 10,000-container listing: 40 pieces of ~128 KiB). */
const JSON_SLICE = 256;

/**
 * Writes `JSON.stringify(value, null, 2)`, the same bytes, in pieces: an object's array members are written a slice
 * of elements at a time, so a listing of 10,000 containers is never one 5 MB string and then one 5 MB buffer
 * (issue 15: every page touched is a fault that costs on this machine kind). Each slice is one JSON.stringify of
 * `[slice]`, whose elements come out indented as deep as they sit in the whole document, so the text is cut out of
 * it rather than re-indented. Each piece ends at a line end (`io.out` adds one only after the last). An array with
 * an element that has toJSON (which gets its index as key) and anything that is not a plain object are written whole.
 */
export function printJson(io: Out, value: unknown): void {
  if (!isPlainObject(value)) {
    io.out(JSON.stringify(value, null, 2));
    return;
  }
  let head = '{';
  let members = 0;
  for (const key of Object.keys(value)) {
    const v = value[key];
    if (Array.isArray(v) && v.length > JSON_SLICE && !hasToJson(v) && !v.some(elementHasToJson)) {
      io.out(`${head}${members > 0 ? ',' : ''}\n  ${JSON.stringify(key)}: [\n`);
      for (let i = 0; i < v.length; i += JSON_SLICE) {
        const text = JSON.stringify([v.slice(i, i + JSON_SLICE)], null, 2); // "[\n  [\n" elements "\n  ]\n]"
        io.out(`${text.slice(6, -6)}${i + JSON_SLICE < v.length ? ',' : ''}\n`);
      }
      head = '  ]';
      members++;
      continue;
    }
    const text = JSON.stringify(v, null, 2) as string | undefined; // undefined: the key is left out
    if (text === undefined) continue;
    head += `${members++ === 0 ? '' : ','}\n  ${JSON.stringify(key)}: ${text.replace(/\n/g, '\n  ')}`;
  }
  io.out(members === 0 ? '{}' : `${head}\n}`);
}

function elementHasToJson(el: unknown): boolean {
  return typeof el === 'object' && el !== null && hasToJson(el);
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
