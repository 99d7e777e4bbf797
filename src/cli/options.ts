/** Options every command shares, and how they become inputs for the use cases. */
import * as path from 'node:path';
import type { Command } from 'commander';
import { dataRootFromDaemonConfig } from '../docker/naming.js';
import { DEFAULT_ROOT, DockerRoot } from '../docker/root.js';
import type { NamingOptions } from '../docker/naming.js';

export const DEFAULT_DAEMON_CONFIG = '/etc/docker/daemon.json';

export interface CommonOptions {
  root: string;
  json?: boolean;
  debug?: boolean;
  pool?: string;
  daemonConfig?: string;
}

export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--root <dir>', 'Docker root directory', DEFAULT_ROOT)
    .option('--json', 'print JSON (shape documented in the README)')
    .option('--pool <name>', 'thin-pool device-mapper name (default: derived as Docker does)')
    .option(
      '--daemon-config <file>',
      `daemon.json to read dm.thinpooldev from (default: ${DEFAULT_DAEMON_CONFIG} when --root is the daemon's data-root)`,
    )
    .option('--debug', 'show stack traces on errors');
}

export function openRoot(opts: CommonOptions): DockerRoot {
  return DockerRoot.open(opts.root);
}

/**
 * The daemon.json that describes this root: the one given, or the host's own when the root is the host's
 * Docker root (a copy of /var/lib/docker from another machine is not described by this host's config).
 */
export function namingOptions(opts: CommonOptions): NamingOptions {
  if (opts.daemonConfig) return { pool: opts.pool, daemonConfig: opts.daemonConfig };
  return { pool: opts.pool, daemonConfig: isHostRoot(opts) ? DEFAULT_DAEMON_CONFIG : null };
}

/** --root is this host's own Docker data-root (so the host's daemon and daemon.json describe it). */
export function isHostRoot(opts: CommonOptions): boolean {
  return path.resolve(opts.root) === path.resolve(dataRootFromDaemonConfigSafe() ?? DEFAULT_ROOT);
}

function dataRootFromDaemonConfigSafe(): string | null {
  try {
    return dataRootFromDaemonConfig(DEFAULT_DAEMON_CONFIG);
  } catch {
    return null;
  }
}
