/**
 * The metrics timer (`dminspect install-timer`): writes a systemd service + timer that run `dminspect pool --textfile DIR` every
 * minute, for node_exporter's textfile collector. It writes the two unit files and prints the systemctl commands;
 * it runs them only with `--enable`. `packaging/systemd/` holds what it writes with `--exec /usr/local/bin/dminspect`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execaRunner, shellLine, type Runner } from '../dm/plan.js';
import { DmiError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { isStandaloneBinary } from '../util/build-info.js';

export const SERVICE_NAME = 'dminspect-textfile.service';
export const TIMER_NAME = 'dminspect-textfile.timer';
/** Debian's prometheus-node-exporter reads `*.prom` here (`--collector.textfile.directory`). */
export const DEFAULT_TEXTFILE_DIR = '/var/lib/prometheus/node-exporter';
export const DEFAULT_UNIT_DIR = '/etc/systemd/system';

export interface UnitOptions {
  /** The command that runs dminspect: an executable, or node and the bin script. */
  exec: string[];
  root: string;
  textfileDir: string;
  pool?: string;
}

/** One ExecStart= word: systemd's quoting, `%` specifiers and `$` expansion escaped. */
export function systemdWord(arg: string): string {
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (escaped !== '' && /^[A-Za-z0-9_@%+=:,./$-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function checkPath(what: string, p: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(p))
    throw new DmiError(
      'USAGE',
      `${what} ${JSON.stringify(p)}: a path with whitespace or control characters cannot go in a unit file`,
    );
  return path.resolve(p);
}

export function serviceUnit(o: UnitOptions): string {
  const argv = [
    ...o.exec,
    'pool',
    '--root',
    o.root,
    ...(o.pool ? ['--pool', o.pool] : []),
    '--textfile',
    o.textfileDir,
  ];
  return [
    '[Unit]',
    "Description=dminspect: Docker devicemapper thin-pool metrics for node_exporter's textfile collector",
    'Documentation=https://github.com/prometheus/node_exporter#textfile-collector',
    'After=docker.service',
    '',
    '[Service]',
    'Type=oneshot',
    '# Writes <dir>/dminspect.prom atomically. When the pool cannot be read, the file says dminspect_up 0 and the',
    "# run fails with the error's exit status (systemctl --failed shows it).",
    `ExecStart=${argv.map(systemdWord).join(' ')}`,
    'TimeoutStartSec=50s',
    'Nice=10',
    'IOSchedulingClass=idle',
    '# dminspect only reads the Docker root and the pool metadata; it writes the textfile directory only.',
    '# Safe on systemd 219 (CentOS 7, Amazon Linux 2) and on current systemd: 219 knows ProtectSystem= yes/full,',
    '# ProtectHome=, Read*Directories=, PrivateTmp=, PrivateNetwork=, NoNewPrivileges=; it ignores, with a warning,',
    '# ProtectSystem=strict and ReadWritePaths= (systemd 231/232), so the lines for both are here.',
    'ProtectSystem=full',
    '# systemd >= 232: the whole tree read-only but ReadWritePaths= (the last ProtectSystem= wins; 219 keeps full).',
    'ProtectSystem=strict',
    'ProtectHome=read-only',
    '# the evidence, read-only on every systemd (ProtectSystem=full leaves /var writable)',
    `ReadOnlyDirectories=${o.root}`,
    `ReadWritePaths=${o.textfileDir}`,
    `ReadWriteDirectories=${o.textfileDir}`,
    'PrivateTmp=yes',
    'PrivateNetwork=yes',
    'NoNewPrivileges=yes',
    '',
  ].join('\n');
}

export function timerUnit(): string {
  return [
    '[Unit]',
    'Description=dminspect: thin-pool metrics for node_exporter every minute',
    '',
    '[Timer]',
    'OnCalendar=minutely',
    'AccuracySec=5s',
    `Unit=${SERVICE_NAME}`,
    '',
    '[Install]',
    'WantedBy=timers.target',
    '',
  ].join('\n');
}

/**
 * How to run this dminspect: the single-file binary itself, or node and the package's own bin script (systemd's
 * PATH may not have node).
 */
export function defaultExec(): string[] {
  if (isStandaloneBinary()) return [process.execPath];
  const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'dminspect.js');
  return [process.execPath, bin];
}

export const ENABLE_COMMANDS: string[][] = [
  ['systemctl', 'daemon-reload'],
  ['systemctl', 'enable', '--now', TIMER_NAME],
];

export interface InstallTimerOptions {
  textfileDir: string;
  root: string;
  unitDir: string;
  pool?: string;
  exec?: string;
  dryRun?: boolean;
  enable?: boolean;
  force?: boolean;
  json?: boolean;
}

export interface UnitPlan {
  path: string;
  content: string;
  /** `create`, `replace` (differs, --force), or `unchanged`. */
  action: 'create' | 'replace' | 'unchanged';
}

export interface InstallResult {
  dryRun: boolean;
  units: UnitPlan[];
  commands: string[];
  enabled: boolean;
  warnings: string[];
}

export async function installTimer(opts: InstallTimerOptions, run: Runner = execaRunner): Promise<InstallResult> {
  if (opts.exec !== undefined && !opts.exec.startsWith('/'))
    throw new DmiError(
      'USAGE',
      `--exec ${JSON.stringify(opts.exec)}: expected an absolute path (systemd runs ExecStart without a shell)`,
    );
  if (opts.dryRun && opts.enable) throw new DmiError('USAGE', '--dry-run and --enable: choose one');
  const unitDir = checkPath('--unit-dir', opts.unitDir);
  const textfileDir = checkPath('--textfile-dir', opts.textfileDir);
  const root = checkPath('--root', opts.root);
  const exec = opts.exec !== undefined ? [checkPath('--exec', opts.exec)] : defaultExec();
  const warnings: string[] = [];
  if (!fs.existsSync(textfileDir))
    warnings.push(
      `${textfileDir} does not exist: create it (or install prometheus-node-exporter) before the timer runs; the service cannot start without it`,
    );
  const units: UnitPlan[] = [
    [SERVICE_NAME, serviceUnit({ exec, root, textfileDir, pool: opts.pool })],
    [TIMER_NAME, timerUnit()],
  ].map(([name, content]) => {
    const p = path.join(unitDir, name!);
    let old: string | null = null;
    try {
      old = fs.readFileSync(p, 'utf8');
    } catch {
      old = null;
    }
    return { path: p, content: content!, action: old === null ? 'create' : old === content ? 'unchanged' : 'replace' };
  });
  const clash = units.filter((u) => u.action === 'replace');
  if (clash.length && !opts.force && !opts.dryRun) {
    throw new DmiError(
      'CONFLICT',
      `${clash.map((u) => u.path).join(', ')}: exists with other content (--force replaces it; --dry-run shows the new content)`,
    );
  }
  const commands = ENABLE_COMMANDS.map(shellLine);
  if (opts.dryRun) return { dryRun: true, units, commands, enabled: false, warnings };
  for (const u of units)
    if (u.action !== 'unchanged') writeFileAtomic(unitDir, path.basename(u.path), u.content, 'the unit file');
  if (opts.enable) {
    for (const argv of ENABLE_COMMANDS) {
      const r = await run(argv);
      if (r.code !== 0)
        throw new DmiError(
          'UNSUPPORTED',
          `${shellLine(argv)} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n')[0] ?? ''}`,
        );
    }
  }
  return { dryRun: false, units, commands, enabled: !!opts.enable, warnings };
}
