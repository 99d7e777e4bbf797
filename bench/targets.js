/**
 * Issue 15's targets, checked against one `npm run bench` run's results (bench/run.js), and the run's exit status.
 * Pure functions: test/bench/targets.test.ts feeds them results.
 */

/** The whole `pool --json` at most this fraction of thin_ls's wall time. */
export const POOL_AUDIT_TARGET = 0.12;

/**
 * One row per target: what, the value measured in this run (null or undefined: not measured, which is not met),
 * the target as text, and whether it was met.
 */
export function targetRows(results) {
  const rows = [];
  const check = (what, value, op, target, unit = '×') =>
    rows.push({
      what,
      value,
      target: `${op} ${target}${unit}`,
      met: typeof value === 'number' && Number.isFinite(value) && (op === '≤' ? value <= target : value >= target),
    });
  for (const r of results) {
    if (r.label === 'docker-listing') {
      check('start-up: --version / node -e 0', r.ratios?.version, '≤', 1.3);
      check('start-up: container <prefix> (10,000) / node -e 0', r.ratios?.containerByPrefix, '≤', 1.6);
      check('start-up: containers --json (10,000) / node -e 0', r.ratios?.containersJson, '≤', 5);
    } else if (r.label?.startsWith('export-')) {
      check(`${r.label}: export / floor (speed)`, r.vsFloor, '≥', 0.9);
      check(`${r.label}: dc3dd / export`, r.vsDc3dd, '≥', 2.5);
      check(`${r.label}: peak RSS`, r.exportRssMb, '≤', 100, ' MB');
    } else if (['shared', 'frag', 'xl'].includes(r.label)) {
      check(`pool audit ${r.label}: pool --json / thin_ls`, r.cliRatio, '≤', POOL_AUDIT_TARGET);
      check(`pool audit ${r.label}: peak RSS`, r.cliRssMb, '≤', 150, ' MB');
    }
  }
  return rows;
}

/** The rows as the run prints them, then the count met (and whether an output was wrong). */
export function formatTargets(rows, failed) {
  if (rows.length === 0) return failed ? ['an output was WRONG'] : [];
  const w = Math.max(...rows.map((r) => r.what.length));
  const missed = rows.filter((r) => !r.met).length;
  return [
    '',
    'issue 15 targets (ratios from this run):',
    ...rows.map(
      (r) =>
        `  ${r.what.padEnd(w)}  ${String(r.value ?? 'n/a').padStart(7)}  target ${r.target.padEnd(9)} ${r.met ? 'met' : 'MISSED'}`,
    ),
    `${rows.length - missed} of ${rows.length} targets met${failed ? '; an output was WRONG' : ''}`,
  ];
}

/**
 * 1 when an output was wrong (whatever the targets), 3 when the outputs were right but a target was missed (0 with
 * `reportOnly`), 0 otherwise.
 */
export function exitStatus(rows, { failed, reportOnly = false }) {
  if (failed) return 1;
  return rows.some((r) => !r.met) && !reportOnly ? 3 : 0;
}
