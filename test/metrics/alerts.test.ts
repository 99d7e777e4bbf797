/** The packaged Prometheus alerting rules: promtool check rules, and their unit tests run by promtool test rules. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../support/cli.js';
import { PROMTOOL, PROMTOOL_SKIP, tmpDir } from './helpers.js';

const DIR = path.join(REPO, 'packaging/prometheus');
const RULES = 'dminspect-alerts.yml';
const TESTS = 'dminspect-alerts.test.yml';

if (!PROMTOOL) console.warn(PROMTOOL_SKIP);

function promtool(args: string[], cwd: string): { code: number; output: string } {
  const r = spawnSync(PROMTOOL!, args, { cwd, encoding: 'utf8' });
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!PROMTOOL)('alerting rules', () => {
  it('promtool check rules passes', () => {
    const r = promtool(['check', 'rules', RULES], DIR);
    expect(r.output).toMatch(/SUCCESS: 8 rules found/);
    expect(r.code, r.output).toBe(0);
  });

  it('promtool test rules: every alert fires and does not fire as its unit tests say', () => {
    const r = promtool(['test', 'rules', TESTS], DIR);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/SUCCESS/);
    const tests = fs.readFileSync(path.join(DIR, TESTS), 'utf8');
    const alerts = [...fs.readFileSync(path.join(DIR, RULES), 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
    for (const a of new Set(alerts)) expect(tests, a).toMatch(new RegExp(`alertname: ${a}\\n\\s+exp_alerts: \\[\\]`));
    for (const a of new Set(alerts)) expect(tests, a).toMatch(new RegExp(`alertname: ${a}\\n\\s+exp_alerts:\\n`));
  });

  it('the unit tests catch a wrong threshold (a mutated rule file fails them)', () => {
    const d = tmpDir('dminspect-rules-');
    fs.copyFileSync(path.join(DIR, TESTS), path.join(d, TESTS));
    const rules = fs.readFileSync(path.join(DIR, RULES), 'utf8');
    for (const [from, to] of [
      ['> 0.90 and dminspect_pool_data_bytes', '> 0.96 and dminspect_pool_data_bytes'],
      ['> 1073741824', '> 2147483648'],
      [
        'time() - dminspect_last_success_timestamp_seconds > 600',
        'time() - dminspect_last_success_timestamp_seconds > 1200',
      ],
    ]) {
      expect(rules).toContain(from);
      fs.writeFileSync(path.join(d, RULES), rules.replace(from!, to!));
      expect(promtool(['test', 'rules', TESTS], d).code, `${from} -> ${to}`).not.toBe(0);
    }
  });
});
