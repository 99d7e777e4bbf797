// bench/run.js's verdict on one run (issue 15): which targets were met, and its exit status (1 an output was wrong,
// 3 a target missed, 0 otherwise), fed results as the benchmarks return them, including missing figures.
import { describe, expect, it } from 'vitest';
import { exitStatus, formatTargets, targetRows } from '../../bench/targets.js';

const pool = (label: string, cliRatio: number | null, cliRssMb = 60) => ({ label, cliRatio, cliRssMb });
const listing = (ratios: Record<string, number> | undefined) => ({ label: 'docker-listing', ratios });
const exportRun = (layout: string, vsFloor: number, vsDc3dd: number | null, exportRssMb = 80) => ({
  label: `export-${layout}`,
  vsFloor,
  vsDc3dd,
  exportRssMb,
});
const allMet = [
  pool('shared', 0.11),
  pool('frag', 0.12),
  pool('xl', 0.05),
  listing({ version: 1.2, containerByPrefix: 1.6, containersJson: 4.9 }),
  exportRun('realistic', 0.95, 2.6),
  exportRun('scattered', 0.9, 2.5),
  { label: 'stale-scan', ratio: 2 },
];

describe('bench targets (bench/targets.js)', () => {
  it('every figure at or inside its target: 15 rows met, exit 0; the targets are bounds, not strict', () => {
    const rows = targetRows(allMet);
    expect(rows).toHaveLength(15);
    expect(rows.filter((r) => !r.met)).toEqual([]);
    expect(exitStatus(rows, { failed: false })).toBe(0);
    expect(formatTargets(rows, false).at(-1)).toBe('15 of 15 targets met');
  });

  it('one figure past its target: that row missed, exit 3 (0 with --report-only)', () => {
    const results = allMet.map((r) => (r.label === 'frag' ? pool('frag', 0.121) : r));
    const rows = targetRows(results);
    expect(rows.filter((r) => !r.met).map((r) => r.what)).toEqual(['pool audit frag: pool --json / thin_ls']);
    expect(exitStatus(rows, { failed: false })).toBe(3);
    expect(exitStatus(rows, { failed: false, reportOnly: true })).toBe(0);
    const text = formatTargets(rows, false);
    expect(text.find((l) => l.includes('pool audit frag: pool --json'))).toMatch(/ 0\.121 {2}target ≤ 0\.12× +MISSED$/);
    expect(text.at(-1)).toBe('14 of 15 targets met');
  });

  it('a wrong output is exit 1 whatever the targets, --report-only included', () => {
    const rows = targetRows(allMet);
    expect(exitStatus(rows, { failed: true })).toBe(1);
    expect(exitStatus(rows, { failed: true, reportOnly: true })).toBe(1);
    expect(formatTargets(rows, true).at(-1)).toBe('15 of 15 targets met; an output was WRONG');
    expect(formatTargets([], true)).toEqual(['an output was WRONG']);
  });

  it('a figure the run could not measure is not met: no dc3dd, no listing ratios, a NaN', () => {
    const results = [
      pool('shared', null),
      listing(undefined),
      exportRun('realistic', Number.NaN, null),
      exportRun('scattered', 0.95, 2.6, Number.POSITIVE_INFINITY),
    ];
    const rows = targetRows(results);
    expect(rows.filter((r) => !r.met).map((r) => r.what)).toEqual([
      'pool audit shared: pool --json / thin_ls',
      'start-up: --version / node -e 0',
      'start-up: container <prefix> (10,000) / node -e 0',
      'start-up: containers --json (10,000) / node -e 0',
      'export-realistic: export / floor (speed)',
      'export-realistic: dc3dd / export',
      'export-scattered: peak RSS',
    ]);
    expect(formatTargets(rows, false).filter((l) => l.includes(' n/a '))).toHaveLength(5);
    expect(exitStatus(rows, { failed: false })).toBe(3);
  });

  it('a run with no target row (--thin-only on no variant) is exit 0 and prints no verdict', () => {
    expect(targetRows([{ label: 'stale-scan' }])).toEqual([]);
    expect(exitStatus([], { failed: false })).toBe(0);
    expect(formatTargets([], false)).toEqual([]);
  });
});
