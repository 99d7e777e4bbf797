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
import { execaRunner, type Runner } from './plan.js';

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

  /** The pool's status, or null when the pool is not active. */
  async poolStatus(pool: string): Promise<ThinPoolStatus | null> {
    const r = await this.dmsetup(['status', pool]);
    if (r.code !== 0) {
      if (/No such device|not found|does not exist/i.test(r.stderr)) return null;
      throw new DmiError('UNSUPPORTED', `dmsetup status ${pool}: ${r.stderr.trim().split('\n').pop()}`);
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
