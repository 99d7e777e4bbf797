/**
 * `pool` on a live host: when the kernel has the root's pool active (or the one `--pool` names), the audit reads
 * it through a held metadata snapshot (pool-source/live.ts) and shows the kernel's own figures; otherwise it
 * reads the files offline (audit/pool.ts).
 */
import * as os from 'node:os';
import { DockerRoot } from '../docker/root.js';
import type { DmHost } from '../dm/host.js';
import { withPool } from '../pool-source/index.js';
import { holdPlan, locateRootLive, withHeldSnapshot, type HeldView, type LiveLocation } from '../pool-source/live.js';
import { connectDaemon, type Daemon } from '../docker/daemon.js';
import { sortFindings } from '../finding.js';
import { compareWithDaemon, statusBytes } from './daemon-view.js';
import { liveMetadataSplit } from './live-rules.js';
import { auditSource, poolAudit, type PoolOptions, type PoolReport } from './pool.js';
import { distModule } from '../pool-source/held-read.js';

export interface LivePoolOptions extends PoolOptions {
  /** Ask the kernel (default true); false: read the files as they lie on disk. */
  live?: boolean | undefined;
  /** Hold records (default /run/dminspect). */
  stateDir: string;
  dryRun?: boolean;
  /** Test hook (DMINSPECT_TEST_HOLD_MS): wait this long while holding, before reading. */
  holdDelayMs?: number;
  stepTimeoutMs?: number;
  /** The metadata read's own bound (pool-source/live.ts; default 300 s). */
  readTimeoutMs?: number;
  /** Test hook (DMINSPECT_TEST_READ_MS): the worker waits this long before reading (a slow read). */
  readDelayMs?: number;
  log?: (line: string) => void;
  /** `uname -r` (tests). */
  kernelRelease?: string;
  /** sysfs root (tests). */
  sysfs?: string;
  /** How to reach the Docker daemon (default: DOCKER_HOST or the default socket); null: do not ask. */
  daemon?: (() => Promise<Daemon | null>) | null;
}

export type LivePoolResult = { dryRun: false; report: PoolReport } | { dryRun: true; plan: string; live: boolean };

export async function poolAuditLive(
  root: DockerRoot | null,
  opts: LivePoolOptions,
  host: DmHost,
): Promise<LivePoolResult> {
  const loc = await locateRootLive(root?.root ?? null, opts, host);
  if (opts.dryRun) {
    if (!loc)
      return {
        dryRun: true,
        live: false,
        plan: '# the pool is not active in the kernel: its files are read offline, read-only; nothing on the system changes',
      };
    return { dryRun: true, live: true, plan: holdPlan(loc, opts.stateDir, opts.metadataSnap) };
  }
  if (!loc) return { dryRun: false, report: poolAudit(root, opts) };
  const kernelRelease = opts.kernelRelease ?? os.release();
  const held = await withHeldSnapshot(
    host,
    loc,
    {
      stateDir: opts.stateDir,
      useHeld: opts.metadataSnap,
      holdDelayMs: opts.holdDelayMs,
      stepTimeoutMs: opts.stepTimeoutMs,
      readTimeoutMs: opts.readTimeoutMs,
      readDelayMs: opts.readDelayMs,
      log: opts.log,
    },
    {
      // in a worker thread (the timeout and signals reach this thread during the read), the root opened there again
      task: {
        module: distModule('audit/live.js'),
        fn: 'heldPoolAudit',
        args: [root?.root ?? null, plainOptions(opts), loc, kernelRelease],
      },
      local: (v) => readHeldPool(root, opts, loc, kernelRelease, v),
    },
  );
  const report = held.value;
  if (report.live && opts.daemon !== null) await addDaemonView(report, loc, host, opts);
  return { dryRun: false, report };
}

/** The pool audit of a held snapshot (on this thread, or in the worker: heldPoolAudit). */
function readHeldPool(
  root: DockerRoot | null,
  opts: PoolOptions,
  loc: LiveLocation,
  kernelRelease: string,
  v: HeldView,
): PoolReport {
  return withPool(loc, { metadataSnap: v.heldRoot !== null }, (src) =>
    auditSource(src, root, opts, {
      location: loc,
      status: v.reserved ? v.statusBefore : v.status,
      statusHeld: v.status,
      heldRoot: v.heldRoot,
      reserved: v.reserved,
      staleCleared: v.staleCleared,
      metadata: liveMetadataSplit(v.reserved ? v.statusBefore : v.status, kernelRelease),
      kernelRelease,
    }),
  );
}

/** The worker thread's entry (pool-source/held-read.ts): the same read, the Docker root opened in the worker. */
export function heldPoolAudit(
  rootDir: string | null,
  opts: PoolOptions,
  loc: LiveLocation,
  kernelRelease: string,
  v: HeldView,
): PoolReport {
  return readHeldPool(rootDir === null ? null : DockerRoot.open(rootDir), opts, loc, kernelRelease, v);
}

/** The options without what cannot cross to a worker (functions: the log, the daemon). */
function plainOptions(opts: LivePoolOptions): PoolOptions {
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => typeof v !== 'function')) as PoolOptions;
}

/** `docker info` beside the kernel's figures, when the daemon that answers uses this pool. */
async function addDaemonView(
  report: PoolReport,
  loc: LiveLocation,
  host: DmHost,
  opts: LivePoolOptions,
): Promise<void> {
  const daemon = await (opts.daemon ?? (() => connectDaemon()))().catch(() => null);
  if (!daemon || daemon.info.driverStatus['Pool Name'] !== loc.pool) return;
  const fresh = await host.poolStatus(loc.pool, { timeoutMs: opts.stepTimeoutMs, log: opts.log }).catch(() => null);
  const s = report.live!.status;
  const ours = {
    dataUsed: s.usedDataBlocks * report.dataBlockBytes,
    dataTotal: s.totalDataBlocks * report.dataBlockBytes,
    metadataUsed: s.usedMetadataBlocks * 4096,
    metadataTotal: s.totalMetadataBlocks * 4096,
  };
  const { view, findings } = compareWithDaemon(
    daemon.info,
    ours,
    fresh && !fresh.fail ? statusBytes(fresh, report.dataBlockBytes) : null,
    loc.pool,
  );
  report.live!.daemon = view;
  report.findings.push(...findings);
  sortFindings(report.findings);
}
