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

export function printJson(io: Out, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
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
