/** `dminspect install-timer`: the systemd units it writes, the packaged copies, and systemd-analyze verify. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { installTimer, serviceUnit, systemdWord, timerUnit } from '../../src/audit/timer.js';
import { EXIT_CODES, isDmiError } from '../../src/errors.js';
import { REPO, SAMPLE } from '../support/cli.js';
import { tmpDir } from './helpers.js';
import { tool } from '../support/tools.js';

/** Runs `dminspect install-timer ...` through the CLI's main(), in-process. */
async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io = {
    out: (s: string) => (stdout += s.endsWith('\n') ? s : `${s}\n`),
    err: (s: string) => (stderr += s.endsWith('\n') ? s : `${s}\n`),
  };
  const code = await main(['node', 'dminspect', 'install-timer', ...args], io);
  return { code, stdout, stderr };
}

const hasSystemdAnalyze = tool(
  spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0,
  'systemd-analyze (systemd) is not installed',
);

describe('install-timer', () => {
  it('the packaged units are what install-timer writes for /usr/local/bin/dminspect', () => {
    const o = {
      exec: ['/usr/local/bin/dminspect'],
      root: '/var/lib/docker',
      textfileDir: '/var/lib/prometheus/node-exporter',
    };
    expect(fs.readFileSync(path.join(REPO, 'packaging/systemd/dminspect-textfile.service'), 'utf8')).toBe(
      serviceUnit(o),
    );
    expect(fs.readFileSync(path.join(REPO, 'packaging/systemd/dminspect-textfile.timer'), 'utf8')).toBe(timerUnit());
    expect(serviceUnit(o)).toContain(
      '\nExecStart=/usr/local/bin/dminspect pool --root /var/lib/docker --textfile /var/lib/prometheus/node-exporter\n',
    );
    expect(timerUnit()).toContain('\nOnCalendar=minutely\n');
  });

  it('--dry-run prints both units and the systemctl commands, and writes nothing', async () => {
    const d = tmpDir();
    const r = await run(
      '--dry-run',
      '--unit-dir',
      d,
      '--textfile-dir',
      d,
      '--root',
      SAMPLE,
      '--exec',
      '/usr/local/bin/dminspect',
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`# ${d}/dminspect-textfile.service (would create)`);
    expect(r.stdout).toContain(`ExecStart=/usr/local/bin/dminspect pool --root ${SAMPLE} --textfile ${d}`);
    expect(r.stdout).toContain('[Timer]');
    expect(r.stdout.trim().split('\n').at(-1)).toBe(
      'systemctl daemon-reload && systemctl enable --now dminspect-textfile.timer',
    );
    expect(fs.readdirSync(d)).toEqual([]);
  });

  it('writes the units (0644), is idempotent, refuses to replace other content without --force', async () => {
    const d = tmpDir();
    const tf = tmpDir();
    const args = ['--unit-dir', d, '--textfile-dir', tf, '--root', SAMPLE, '--pool', 'docker-thinpool'];
    const a = await run(...args);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(
      `wrote: ${d}/dminspect-textfile.service\nwrote: ${d}/dminspect-textfile.timer\nto start it: systemctl daemon-reload && systemctl enable --now dminspect-textfile.timer\n`,
    );
    expect(fs.readdirSync(d).sort()).toEqual(['dminspect-textfile.service', 'dminspect-textfile.timer']);
    expect(fs.statSync(path.join(d, 'dminspect-textfile.service')).mode & 0o777).toBe(0o644);
    const unit = fs.readFileSync(path.join(d, 'dminspect-textfile.service'), 'utf8');
    expect(unit).toContain(
      `ExecStart=${process.execPath} ${path.join(REPO, 'bin/dminspect.js')} pool --root ${SAMPLE} --pool docker-thinpool --textfile ${tf}\n`,
    );
    expect(unit).toContain(`ReadWritePaths=${tf}\n`);
    expect((await run(...args)).stdout).toMatch(/^unchanged: .*service\nunchanged: .*timer\n/);
    const other = await run(...args.slice(0, -2));
    expect(other.code).toBe(EXIT_CODES.CONFLICT);
    expect(other.stderr).toMatch(/dminspect-textfile\.service: exists with other content \(--force replaces it/);
    expect((await run(...args.slice(0, -2), '--force')).stdout).toMatch(/^replaced: .*service\nunchanged: .*timer\n/);
  });

  it('warns when the textfile directory does not exist; refuses relative --exec and paths with spaces', async () => {
    const d = tmpDir();
    const w = await run('--unit-dir', d, '--textfile-dir', path.join(d, 'nosuch'), '--dry-run');
    expect(w.stderr).toMatch(/^warning: .*nosuch does not exist/);
    expect((await run('--unit-dir', d, '--exec', 'dminspect', '--dry-run')).code).toBe(EXIT_CODES.USAGE);
    expect((await run('--unit-dir', d, '--textfile-dir', '/tmp/a b', '--dry-run')).code).toBe(EXIT_CODES.USAGE);
    const e = await installTimer({ unitDir: path.join(d, 'nosuch'), textfileDir: d, root: SAMPLE }).catch(
      (x: unknown) => x,
    );
    expect(isDmiError(e) && e.code).toBe('IO');
  });

  it('quotes ExecStart words for systemd', () => {
    expect(systemdWord('/usr/bin/node')).toBe('/usr/bin/node');
    expect(systemdWord('50%')).toBe('50%%');
    expect(systemdWord('$HOME')).toBe('$$HOME');
    expect(systemdWord('a "b"\\')).toBe('"a \\"b\\"\\\\"');
  });

  it('systemd 219 (CentOS 7, Amazon Linux 2) keeps the hardening: what it ignores has a counterpart it knows', () => {
    // Settings systemd 219 knows (systemd.exec/service/unit/timer man pages of v219), and the values it accepts for
    // the enums used here. 219 logs "Unknown lvalue" / "Failed to parse ..., ignoring" for anything else and goes on.
    const known219 = new Set([
      'Description',
      'Documentation',
      'After',
      'Type',
      'ExecStart',
      'TimeoutStartSec',
      'Nice',
      'IOSchedulingClass',
      'ProtectSystem',
      'ProtectHome',
      'ReadOnlyDirectories',
      'ReadWriteDirectories',
      'InaccessibleDirectories',
      'PrivateTmp',
      'PrivateNetwork',
      'PrivateDevices',
      'NoNewPrivileges',
      'CapabilityBoundingSet',
      'OnCalendar',
      'AccuracySec',
      'Unit',
      'WantedBy',
    ]);
    const values219: Record<string, string[]> = {
      ProtectSystem: ['yes', 'no', 'true', 'false', 'full'],
      ProtectHome: ['yes', 'no', 'true', 'false', 'read-only'],
    };
    /** The settings as systemd 219 ends up with them: unknown keys and values dropped, the last of a scalar wins. */
    function as219(unit: string): Map<string, string[]> {
      const m = new Map<string, string[]>();
      for (const line of unit.split('\n')) {
        const eq = line.indexOf('=');
        if (line.startsWith('#') || line.startsWith('[') || eq < 0) continue;
        const [k, v] = [line.slice(0, eq), line.slice(eq + 1)];
        if (!known219.has(k) || (values219[k] && !values219[k].includes(v))) continue;
        m.set(k, k.endsWith('Directories') ? [...(m.get(k) ?? []), v] : [v]);
      }
      return m;
    }
    const o = {
      exec: ['/usr/local/bin/dminspect'],
      root: '/var/lib/docker',
      textfileDir: '/var/lib/prometheus/node-exporter',
    };
    const unit = serviceUnit(o);
    const old = as219(unit);
    expect(old.get('ProtectSystem')).toEqual(['full']);
    expect(old.get('ProtectHome')).toEqual(['read-only']);
    expect(old.get('ReadOnlyDirectories')).toEqual(['/var/lib/docker']);
    expect(old.get('ReadWriteDirectories')).toEqual(['/var/lib/prometheus/node-exporter']);
    expect([old.get('PrivateTmp'), old.get('PrivateNetwork'), old.get('NoNewPrivileges')]).toEqual([
      ['yes'],
      ['yes'],
      ['yes'],
    ]);
    // the only settings 219 drops are the newer spellings of what it keeps
    const dropped = unit.split('\n').filter((l) => /^[A-Za-z]+=/.test(l) && !known219.has(l.slice(0, l.indexOf('='))));
    expect(dropped).toEqual(['ReadWritePaths=/var/lib/prometheus/node-exporter']);
    // and on current systemd the last ProtectSystem= wins: strict
    expect(unit.match(/^ProtectSystem=.*$/gm)?.at(-1)).toBe('ProtectSystem=strict');
    for (const l of timerUnit().split('\n'))
      if (/^[A-Za-z]+=/.test(l)) expect(known219.has(l.slice(0, l.indexOf('='))), l).toBe(true);
  });

  it.skipIf(!hasSystemdAnalyze)('systemd-analyze verify accepts the units it writes', async () => {
    const d = tmpDir();
    expect((await run('--unit-dir', d, '--textfile-dir', d, '--root', SAMPLE)).code).toBe(0);
    const r = spawnSync(
      'systemd-analyze',
      ['verify', '--man=no', './dminspect-textfile.service', './dminspect-textfile.timer'],
      { cwd: d, encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/dminspect-textfile\.(service|timer):\d+:/); // no warning about a line of ours
  });
});
