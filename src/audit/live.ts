/**
 * `pool` on a live host: when the kernel has the root's pool active (or the one `--pool` names), the audit reads
 * it through a held metadata snapshot (pool-source/live.ts) and shows the kernel's own figures; otherwise it
 * reads the files offline (audit/pool.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DockerRoot } from '../docker/root.js';
import { resolveNaming } from '../docker/naming.js';
import type { DmHost } from '../dm/host.js';
import { DmiError } from '../errors.js';
import { withPool } from '../pool-source/index.js';
import { holdPlan, liveStatus, locateLive, withHeldSnapshot, type LiveLocation } from '../pool-source/live.js';
import { connectDaemon, type Daemon } from '../docker/daemon.js';
import { sortFindings } from '../finding.js';
import { compareWithDaemon, statusBytes } from './daemon-view.js';
import { liveMetadataSplit } from './live-rules.js';
import { auditSource, poolAudit, type PoolOptions, type PoolReport } from './pool.js';

export interface LivePoolOptions extends PoolOptions {
  /** Ask the kernel (default true); false: read the files as they lie on disk. */
  live?: boolean;
  /** Hold records (default /run/dminspect). */
  stateDir: string;
  dryRun?: boolean;
  /** Test hook (DMINSPECT_TEST_HOLD_MS): wait this long while holding, before reading. */
  holdDelayMs?: number;
  stepTimeoutMs?: number;
  log?: (line: string) => void;
  /** `uname -r` (tests). */
  kernelRelease?: string;
  /** sysfs root (tests). */
  sysfs?: string;
  /** How to reach the Docker daemon (default: DOCKER_HOST or the default socket); null: do not ask. */
  daemon?: (() => Promise<Daemon | null>) | null;
}

export type LivePoolResult = { dryRun: false; report: PoolReport } | { dryRun: true; plan: string; live: boolean };

/**
 * The pool the live path would ask the kernel about: `--pool`, or the root's (naming); null when the options
 * name files (`--metadata`, `--image`) or nothing names a pool.
 */
export function livePoolName(root: DockerRoot | null, opts: LivePoolOptions): string | null {
  if (opts.live === false || opts.metadata !== undefined || (opts.images?.length ?? 0) > 0) return null;
  if (opts.pool) return opts.pool.replace(/^\/dev\/mapper\//, '');
  if (!root || !fs.existsSync(path.join(root.root, 'devicemapper'))) return null;
  try {
    return resolveNaming(root.root, opts).poolName;
  } catch {
    return null;
  }
}

/** Where the pool is: live (the kernel answers) or null (offline). */
export async function locateLivePool(root: DockerRoot | null, opts: LivePoolOptions, host: DmHost): Promise<LiveLocation | null> {
  const name = livePoolName(root, opts);
  if (name === null || !host.hasDeviceMapper()) return null;
  try {
    return await locateLive(host, name, { stepTimeoutMs: opts.stepTimeoutMs, log: opts.log, sysfs: opts.sysfs });
  } catch (e) {
    // Not root, or no dmsetup: the kernel cannot be asked; the files are read as before (the report says
    // `live: null`). An explicit --pool the kernel should answer for is an error the user needs to see.
    if (e instanceof DmiError && (e.code === 'PERMISSION' || e.code === 'UNSUPPORTED') && !opts.pool) {
      opts.log?.(`not read live: ${e.message}`);
      return null;
    }
    throw e;
  }
}

export async function poolAuditLive(root: DockerRoot | null, opts: LivePoolOptions, host: DmHost): Promise<LivePoolResult> {
  const loc = await locateLivePool(root, opts, host);
  if (opts.dryRun) {
    if (!loc) return { dryRun: true, live: false, plan: '# the pool is not active in the kernel: its files are read offline, read-only; nothing on the system changes' };
    return { dryRun: true, live: true, plan: holdPlan(loc, opts.stateDir, opts.metadataSnap) };
  }
  if (!loc) return { dryRun: false, report: poolAudit(root, opts) };
  const kernelRelease = opts.kernelRelease ?? os.release();
  const held = await withHeldSnapshot(host, loc, { stateDir: opts.stateDir, useHeld: opts.metadataSnap, holdDelayMs: opts.holdDelayMs, stepTimeoutMs: opts.stepTimeoutMs, log: opts.log }, (v) =>
    withPool(loc, { metadataSnap: v.heldRoot !== null }, (src) =>
      auditSource(src, root, opts, {
        location: loc,
        status: v.status,
        statusBefore: v.statusBefore,
        heldRoot: v.heldRoot,
        reserved: v.reserved,
        staleCleared: v.staleCleared,
        metadata: liveMetadataSplit(v.status, kernelRelease),
        kernelRelease,
      }),
    ),
  );
  const report = held.value;
  if (report.live && opts.daemon !== null) await addDaemonView(report, loc, host, opts);
  return { dryRun: false, report };
}

/** `docker info` beside the kernel's figures, when the daemon that answers uses this pool. */
async function addDaemonView(report: PoolReport, loc: LiveLocation, host: DmHost, opts: LivePoolOptions): Promise<void> {
  const daemon = await (opts.daemon ?? (() => connectDaemon()))().catch(() => null);
  if (!daemon || daemon.info.driverStatus['Pool Name'] !== loc.pool) return;
  const fresh = await liveStatus(host, loc.pool, opts.stepTimeoutMs, opts.log).catch(() => null);
  const s = report.live!.status;
  const ours = { dataUsed: s.usedDataBlocks * report.dataBlockBytes, dataTotal: s.totalDataBlocks * report.dataBlockBytes, metadataUsed: s.usedMetadataBlocks * 4096, metadataTotal: s.totalMetadataBlocks * 4096 };
  const { view, findings } = compareWithDaemon(daemon.info, ours, fresh && !fresh.fail ? statusBytes(fresh, report.dataBlockBytes) : null, loc.pool);
  report.live!.daemon = view;
  report.findings.push(...findings);
  sortFindings(report.findings);
}
