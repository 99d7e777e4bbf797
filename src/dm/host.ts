/**
 * Read-only questions to the running kernel (through dmsetup and /proc) that forensic plans are built on.
 * Every query goes through a Runner, so tests can answer with recorded real output.
 */
import * as fs from 'node:fs';
import { DmiError } from '../errors.js';
import {
  parseInfo,
  parseTable,
  parseThinPoolStatus,
  parseThinPoolTable,
  type DmInfo,
  type ThinPoolStatus,
  type ThinPoolTable,
} from './dmsetup.js';
import { execaRunner, firstUsefulLine, shellLine, type RunResult, type Runner } from './plan.js';

export class DmHost {
  /** Runs every command of this host: queries here, and the plans the executor runs. */
  constructor(readonly run: Runner = execaRunner) {}

  isRoot(): boolean {
    return typeof process.getuid === 'function' ? process.getuid() === 0 : false;
  }

  requireRoot(what: string): void {
    if (!this.isRoot())
      throw new DmiError(
        'PERMISSION',
        `${what} needs root privileges (device-mapper and mount); run with sudo, or use --dry-run to see the commands`,
      );
  }

  /** The kernel has device-mapper (the misc device is registered). */
  hasDeviceMapper(procMisc = '/proc/misc'): boolean {
    try {
      return /\bdevice-mapper\b/.test(fs.readFileSync(procMisc, 'utf8'));
    } catch {
      return false;
    }
  }

  requireDeviceMapper(): void {
    if (!this.hasDeviceMapper()) {
      throw new DmiError(
        'UNSUPPORTED',
        'this kernel has no device-mapper (no "device-mapper" in /proc/misc; try modprobe dm-thin-pool), use the offline commands (export, mount --offline) instead',
      );
    }
  }

  private async dmsetup(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.run(['dmsetup', ...args]);
  }

  /** `dmsetup info NAME`, or null when there is no such device. */
  async info(name: string): Promise<DmInfo | null> {
    const r = await this.dmsetup(['info', name]);
    if (r.code !== 0) {
      if (/No such device|not found|does not exist/i.test(r.stderr) || r.stdout.includes('Device does not exist'))
        return null;
      throw new DmiError('UNSUPPORTED', `dmsetup info ${name}: ${r.stderr.trim().split('\n').pop()}`);
    }
    if (/Device does not exist/.test(r.stdout)) return null;
    return parseInfo(r.stdout);
  }

  async exists(name: string): Promise<boolean> {
    return (await this.info(name)) !== null;
  }

  /**
   * `dmsetup status <pool>` as a thin-pool status, or null when the kernel has no such device. It must answer
   * within `timeoutMs` (default 30 s): CONFLICT otherwise (a suspended pool blocks dmsetup). PERMISSION when not
   * allowed (a live pool needs root), UNSUPPORTED when dmsetup cannot run or fails otherwise.
   */
  async poolStatus(
    pool: string,
    opts: { timeoutMs?: number | undefined; log?: ((line: string) => void) | undefined } = {},
  ): Promise<ThinPoolStatus | null> {
    const argv = ['dmsetup', 'status', pool];
    opts.log?.(`+ ${shellLine(argv)}`);
    let r: RunResult;
    try {
      r = await withTimeout(this.run(argv), argv, opts.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS);
    } catch (e) {
      if (e instanceof DmiError) throw e;
      throw new DmiError('UNSUPPORTED', `dmsetup status ${pool}: ${e instanceof Error ? e.message : String(e)}`); // no dmsetup
    }
    if (r.code !== 0) {
      if (/No such device|not found|does not exist/i.test(r.stderr)) return null;
      if (/Permission denied|Operation not permitted/i.test(r.stderr))
        throw new DmiError(
          'PERMISSION',
          `dmsetup status ${pool}: ${firstUsefulLine(r.stderr) ?? 'permission denied'} (reading a live pool needs root)`,
        );
      throw new DmiError('UNSUPPORTED', `dmsetup status ${pool}: ${firstUsefulLine(r.stderr) ?? `exit ${r.code}`}`);
    }
    const line = parseTable(r.stdout)[0];
    if (!line) return null;
    if (line.target !== 'thin-pool')
      throw new DmiError('BAD_INPUT', `${pool} is a ${line.target} device, not a thin-pool`);
    return parseThinPoolStatus(line.args);
  }

  async poolTable(pool: string): Promise<ThinPoolTable | null> {
    const r = await this.dmsetup(['table', pool]);
    if (r.code !== 0) return null;
    const line = parseTable(r.stdout)[0];
    if (!line || line.target !== 'thin-pool') return null;
    return parseThinPoolTable(line.args);
  }
}

/** How long one dmsetup / blockdev step may take by default. */
export const DEFAULT_STEP_TIMEOUT_MS = 30_000;

/** `p`'s outcome, or `error()` thrown when it has not settled within `ms` (`p` itself is not stopped). */
export async function withDeadline<T>(p: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The command's result, or CONFLICT when it gives no answer in time (the command itself keeps running). */
export function withTimeout(p: Promise<RunResult>, argv: string[], timeoutMs: number): Promise<RunResult> {
  return withDeadline(
    p,
    timeoutMs,
    () =>
      new DmiError('CONFLICT', `${shellLine(argv)}: no answer after ${timeoutMs / 1000} s (is the pool suspended?)`, {
        step: argv,
        timeout: true,
      }),
  );
}
