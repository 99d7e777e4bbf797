/**
 * A live pool: one the running kernel has active (`dmsetup status <pool>` answers). Its metadata changes under
 * the reader, so dminspect reads it through a held metadata snapshot:
 *
 *   1. record its own hold (pool, pid, process start) in `<state dir>/<pool>.hold` — BEFORE asking the kernel,
 *      so a run killed while holding (SIGKILL) leaves a record a later run can clear;
 *   2. `dmsetup message <pool> 0 reserve_metadata_snap` (the kernel commits, then copies the superblock and
 *      takes a reference on the trees: nothing they reach is changed or freed while the hold lasts);
 *   3. read the mappings from the held root (`openPool(..., { metadataSnap: true })`);
 *   4. `dmsetup message <pool> 0 release_metadata_snap`, and remove the record — after an error, on
 *      SIGINT/SIGTERM and when a step overruns its timeout too.
 *
 * Page-cache coherence (what is read, and why): the kernel writes pool metadata with bios (dm-bufio → dm-io)
 * submitted to the metadata block device, below that device's page cache; a buffered read of the block device
 * can return pages cached before the kernel rewrote the block. So:
 *   - a loop-backed metadata device (loop-lvm): dminspect reads the loop's backing FILE (sysfs
 *     `loop/backing_file`). The loop driver writes every bio into that file through the file's own page cache
 *     (or with direct I/O, which invalidates the cached range), so a read of the file sees what the kernel
 *     committed. It needs no privilege and drops nobody's cache.
 *   - any other block device (an LV's `_tmeta`, a `dm.thinpooldev`'s metadata): `blockdev --flushbufs <dev>`
 *     (BLKFLSBUF: drop the device's clean cached pages) AFTER the reserve, then read the device. Every page read
 *     after that comes from the device; the held trees do not change while held, and block 0 (rewritten at
 *     each commit) is read once, right after the flush, for the held root's location only.
 * The space maps are NOT read live: the snapshot does not hold them (the kernel zeroes their roots in the copy)
 * and the live ones change during the read. Space figures come from the kernel itself (`dmsetup status`).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseTable, parseThinPoolTable, type ThinPoolStatus, type ThinPoolTable } from '../dm/dmsetup.js';
import { DEFAULT_STEP_TIMEOUT_MS, withDeadline, withTimeout, type DmHost } from '../dm/host.js';
import { firstUsefulLine, shellLine, type RunResult } from '../dm/plan.js';
import { DmiError, fsError } from '../errors.js';
import { heldTaskRunsInWorker, startWorkerRead, type HeldTask } from './held-read.js';
import { livePoolName, type LiveChoice } from './presence.js';

export { livePoolName, type LiveChoice } from './presence.js';

/** A pool the kernel has active, located (nothing held yet). */
export interface LiveLocation {
  kind: 'live';
  /** The pool's dm name. */
  pool: string;
  /** What is read: the loop's backing file, or the metadata block device (flushed first). */
  metadata: string;
  /** The metadata device as the table names it (`7:1`) and its /dev path. */
  metadataDevice: { majMin: string; path: string | null; backingFile: string | null };
  /** The data device's backing file (loop-lvm) or /dev path; null when it cannot be named. */
  data: string | null;
  /** How the read stays coherent with the kernel's writes: `loop-backing-file` or `flushbufs`. */
  coherence: 'loop-backing-file' | 'flushbufs';
  status: ThinPoolStatus;
  table: ThinPoolTable;
}

export interface LiveOptions {
  /** Where hold records live (default /run/dminspect). */
  stateDir: string;
  /** Read a snapshot someone else holds (`--metadata-snap`): nothing is reserved or released. */
  useHeld?: boolean;
  /** Each dmsetup / blockdev step must answer within this many ms (default 30 s). */
  stepTimeoutMs?: number;
  /** sysfs and /dev roots (tests). */
  sysfs?: string;
  devDir?: string;
  /** Test hook: milliseconds to wait while holding, before reading (the kernel suite kills a run here). */
  holdDelayMs?: number;
  /**
   * The metadata read must end within this many ms (default 300 s), else it is abandoned and the hold released.
   * Only a read in a worker thread (a `HeldTask`) can be cut short; one on this thread is waited for.
   */
  readTimeoutMs?: number;
  /** Test hook: the worker waits this many ms before reading (a slow read). */
  readDelayMs?: number;
  /** Called with each command run (`--debug`, tests). */
  log?: (line: string) => void;
}

/** dminspect's own hold of a pool's metadata snapshot, as recorded in `<state dir>/<pool>.hold`. */
export interface HoldRecord {
  version: 1;
  pool: string;
  pid: number;
  /** The holder's start time (field 22 of /proc/<pid>/stat, clock ticks since boot): a reused pid is not alive. */
  processStart: number | null;
  startedAt: string;
  /** The held root once reserved (null: the record was written, the reserve not yet confirmed). */
  heldRoot: number | null;
}

export interface StaleHoldCleared {
  pool: string;
  pid: number;
  startedAt: string;
  released: boolean;
}

const HOLD_SUFFIX = '.hold';
const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,126}$/;

/** The hold record's file: `<dir>/<pool>.hold` (never `.json`: those are snapshot states, forensics/state.ts). */
export function holdFile(stateDir: string, pool: string): string {
  if (!POOL_NAME.test(pool)) throw new DmiError('USAGE', `invalid pool name ${JSON.stringify(pool)}`);
  return path.join(stateDir, `${pool}${HOLD_SUFFIX}`);
}

export function readHold(stateDir: string, pool: string): HoldRecord | null {
  const file = holdFile(stateDir, pool);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fsError(e, file);
  }
  try {
    const r = JSON.parse(text) as HoldRecord;
    if (typeof r.pid !== 'number' || r.pool !== pool) throw new Error('not a hold record');
    return r;
  } catch {
    // A record cut short (killed while writing it) names no live holder: treat it as stale.
    return { version: 1, pool, pid: 0, processStart: null, startedAt: '', heldRoot: null };
  }
}

/** Writes the record only if none exists (O_EXCL): two runs never both believe they hold the pool. */
function createHold(stateDir: string, rec: HoldRecord): boolean {
  const file = holdFile(stateDir, rec.pool);
  try {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const fd = fs.openSync(file, 'wx', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(rec));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fsError(e, file, 'write the hold record');
  }
}

function updateHold(stateDir: string, rec: HoldRecord): void {
  const file = holdFile(stateDir, rec.pool);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch (e) {
    throw fsError(e, file, 'write the hold record');
  }
}

export function removeHold(stateDir: string, pool: string): void {
  fs.rmSync(holdFile(stateDir, pool), { force: true });
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks), or null. */
export function processStart(pid: number, proc = '/proc'): number | null {
  try {
    const stat = fs.readFileSync(path.join(proc, String(pid), 'stat'), 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(fields[19]); // fields after "(comm) ": state is field 3, starttime field 22
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** The recorded holder still runs (same pid, same start time). */
export function holderAlive(rec: HoldRecord, proc = '/proc'): boolean {
  if (!(rec.pid > 0)) return false;
  try {
    process.kill(rec.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (rec.processStart === null) return true;
  const now = processStart(rec.pid, proc);
  return now === null || now === rec.processStart;
}

/** `dmsetup message <pool> 0 <msg>` (the sector argument is 0 for a pool). */
export function messageArgv(pool: string, msg: 'reserve_metadata_snap' | 'release_metadata_snap'): string[] {
  return ['dmsetup', 'message', pool, '0', msg];
}

async function run(host: DmHost, argv: string[], timeoutMs: number, log?: (l: string) => void): Promise<RunResult> {
  log?.(`+ ${shellLine(argv)}`);
  return withTimeout(host.run(argv), argv, timeoutMs);
}

/** Resolves `M:m` to its /dev node and, for a loop device, its backing file. */
export function resolveDevice(
  majMin: string,
  sysfs = '/sys',
  devDir = '/dev',
): { majMin: string; path: string | null; backingFile: string | null } {
  const m = /^(\d+):(\d+)$/.exec(majMin);
  if (!m) {
    // the table names a path (older dmsetup, or a test)
    return { majMin, path: majMin.startsWith('/') ? majMin : null, backingFile: null };
  }
  const base = path.join(sysfs, 'dev', 'block', majMin);
  let devName: string | null = null;
  try {
    devName = /^DEVNAME=(.+)$/m.exec(fs.readFileSync(path.join(base, 'uevent'), 'utf8'))?.[1]?.trim() ?? null;
  } catch {
    devName = null;
  }
  let backing: string | null = null;
  try {
    const b = fs.readFileSync(path.join(base, 'loop', 'backing_file'), 'utf8').trim();
    // a backing file deleted since: the path names nothing (or something else) now
    if (b !== '' && !b.endsWith('(deleted)')) backing = b;
  } catch {
    backing = null;
  }
  return { majMin, path: devName ? path.join(devDir, devName) : null, backingFile: backing };
}

/**
 * Asks the kernel whether `pool` is active; if so, where its metadata is read from. Null when it is not active
 * (the caller reads the files offline). Nothing is held yet.
 */
export async function locateLive(
  host: DmHost,
  pool: string,
  opts: Pick<LiveOptions, 'sysfs' | 'devDir' | 'stepTimeoutMs' | 'log'> = {},
): Promise<LiveLocation | null> {
  const t = opts.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
  const status = await host.poolStatus(pool, { timeoutMs: t, log: opts.log });
  if (status === null) return null;
  const tr = await run(host, ['dmsetup', 'table', pool], t, opts.log);
  const line = tr.code === 0 ? parseTable(tr.stdout)[0] : undefined;
  if (!line || line.target !== 'thin-pool')
    throw new DmiError('UNSUPPORTED', `dmsetup table ${pool}: ${firstUsefulLine(tr.stderr) ?? 'no thin-pool table'}`);
  const table = parseThinPoolTable(line.args);
  const meta = resolveDevice(table.metadataDev, opts.sysfs, opts.devDir);
  const data = resolveDevice(table.dataDev, opts.sysfs, opts.devDir);
  const metadata = meta.backingFile ?? meta.path;
  if (metadata === null)
    throw new DmiError(
      'NOT_FOUND',
      `pool ${pool}: cannot find the metadata device ${table.metadataDev} (no /sys/dev/block/${table.metadataDev}/uevent)`,
    );
  return {
    kind: 'live',
    pool,
    metadata,
    metadataDevice: meta,
    data: data.backingFile ?? data.path,
    coherence: meta.backingFile ? 'loop-backing-file' : 'flushbufs',
    status,
    table,
  };
}

/** What a held read saw: the kernel's status while held, and what was done to get and drop the hold. */
export interface HoldResult<T> {
  value: T;
  /** `dmsetup status` taken while the snapshot was held (its figures are the kernel's at that moment). */
  status: ThinPoolStatus;
  /** `dmsetup status` just before the reserve. */
  statusBefore: ThinPoolStatus;
  heldRoot: number | null;
  /** dminspect reserved (and released) the snapshot; false with --metadata-snap (someone else's). */
  reserved: boolean;
  staleCleared: StaleHoldCleared | null;
}

/** The commands a held read runs, for `--dry-run`. */
export function holdPlan(loc: LiveLocation, stateDir: string, useHeld = false): string {
  const lines = [
    `# record the hold in ${holdFile(stateDir, loc.pool)} (pid, start time) before reserving`,
    ...(useHeld
      ? ['# --metadata-snap: read the snapshot another holder reserved; nothing is reserved or released']
      : [`${shellLine(messageArgv(loc.pool, 'reserve_metadata_snap'))}    # hold the metadata as it is now`]),
    `${shellLine(['dmsetup', 'status', loc.pool])}    # the kernel's figures, and the held root`,
    ...(loc.coherence === 'flushbufs' && loc.metadataDevice.path
      ? [
          `${shellLine(['blockdev', '--flushbufs', loc.metadataDevice.path])}    # drop cached pages the kernel's writes bypassed`,
        ]
      : []),
    `# read ${loc.metadata} from the held root (read-only)`,
    ...(useHeld
      ? []
      : [
          `${shellLine(messageArgv(loc.pool, 'release_metadata_snap'))}    # always, also after an error, SIGINT/SIGTERM or a timeout`,
        ]),
    `# remove ${holdFile(stateDir, loc.pool)}`,
  ];
  return lines.join('\n');
}

/** Clears a hold a dead dminspect run left: release the snapshot (if still held) and remove the record. */
async function clearStale(
  host: DmHost,
  loc: LiveLocation,
  rec: HoldRecord,
  status: ThinPoolStatus,
  opts: LiveOptions,
  t: number,
): Promise<StaleHoldCleared> {
  let released = false;
  // The dead run's own hold: the root it recorded (or none recorded yet: it died between the reserve and the
  // update). A different held root is someone else's snapshot, taken after the dead run's was gone: not touched.
  const ours = status.heldMetadataRoot !== null && (rec.heldRoot === null || rec.heldRoot === status.heldMetadataRoot);
  if (ours) {
    const r = await run(host, messageArgv(loc.pool, 'release_metadata_snap'), t, opts.log);
    if (r.code !== 0) {
      throw new DmiError(
        'CONFLICT',
        `pool ${loc.pool}: a run that died (pid ${rec.pid}) left the metadata snapshot held, and releasing it failed: ${firstUsefulLine(r.stderr) ?? `exit ${r.code}`}`,
      );
    }
    released = true;
  }
  removeHold(opts.stateDir, loc.pool);
  return { pool: loc.pool, pid: rec.pid, startedAt: rec.startedAt, released };
}

/**
 * Holds the pool's metadata snapshot around `read(metadataPath)`; always releases what it reserved. CONFLICT when
 * someone else holds the snapshot (a live dminspect run, or another tool: then `--metadata-snap` reads theirs).
 */
/** What the reader is given while the snapshot is held. */
export interface HeldView {
  metadata: string;
  status: ThinPoolStatus;
  statusBefore: ThinPoolStatus;
  /** The held root to read; null: a read-only or failed pool, whose current trees are read (they do not change). */
  heldRoot: number | null;
  reserved: boolean;
  staleCleared: StaleHoldCleared | null;
}

export async function withHeldSnapshot<T>(
  host: DmHost,
  loc: LiveLocation,
  opts: LiveOptions,
  read: HeldRead<T>,
): Promise<HoldResult<T>> {
  const t = opts.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
  let status = await host.poolStatus(loc.pool, { timeoutMs: t, log: opts.log });
  if (status === null) throw new DmiError('NOT_FOUND', `pool ${loc.pool} is no longer active`);

  if (opts.useHeld) {
    if (status.heldMetadataRoot === null)
      throw new DmiError(
        'NOT_FOUND',
        `pool ${loc.pool}: no metadata snapshot is held (--metadata-snap reads one another holder reserved); run without --metadata-snap and dminspect holds one itself`,
      );
    await flush(host, loc, t, opts.log);
    const view: HeldView = {
      metadata: loc.metadata,
      status,
      statusBefore: status,
      heldRoot: status.heldMetadataRoot,
      reserved: false,
      staleCleared: null,
    };
    const value = await readHeld(read, view, loc, opts);
    return {
      value,
      status,
      statusBefore: status,
      heldRoot: status.heldMetadataRoot,
      reserved: false,
      staleCleared: null,
    };
  }

  // A read-only or failed pool takes no messages (dm-thin refuses them in READ_ONLY and FAIL mode) and commits
  // nothing: its current trees do not change, so they are read as they are, without a hold.
  if (status.mode === 'ro' || status.mode === 'fail') {
    await flush(host, loc, t, opts.log);
    const view: HeldView = {
      metadata: loc.metadata,
      status,
      statusBefore: status,
      heldRoot: null,
      reserved: false,
      staleCleared: null,
    };
    const value = await readHeld(read, view, loc, opts);
    return { value, status, statusBefore: status, heldRoot: null, reserved: false, staleCleared: null };
  }

  // Someone's record: a live holder (refuse) or a dead one (clear it, then go on).
  let staleCleared: StaleHoldCleared | null = null;
  const existing = readHold(opts.stateDir, loc.pool);
  if (existing) {
    if (holderAlive(existing)) {
      throw new DmiError(
        'CONFLICT',
        `pool ${loc.pool}: dminspect pid ${existing.pid} holds its metadata snapshot (since ${existing.startedAt}); wait for it, or pass --metadata-snap to read the held snapshot`,
        { holder: existing },
      );
    }
    staleCleared = await clearStale(host, loc, existing, status, opts, t);
    status = (await host.poolStatus(loc.pool, { timeoutMs: t, log: opts.log })) ?? status;
  }
  if (status.heldMetadataRoot !== null) {
    throw new DmiError(
      'CONFLICT',
      `pool ${loc.pool}: a metadata snapshot is held already (root block ${status.heldMetadataRoot}) by another tool; pass --metadata-snap to read it, or release it (dmsetup message ${loc.pool} 0 release_metadata_snap) once its holder is done`,
      { heldRoot: status.heldMetadataRoot },
    );
  }
  const rec: HoldRecord = {
    version: 1,
    pool: loc.pool,
    pid: process.pid,
    processStart: processStart(process.pid),
    startedAt: new Date().toISOString(),
    heldRoot: null,
  };
  if (!createHold(opts.stateDir, rec)) {
    const other = readHold(opts.stateDir, loc.pool);
    throw new DmiError(
      'CONFLICT',
      `pool ${loc.pool}: another dminspect run (pid ${other?.pid ?? '?'}) is reserving its metadata snapshot; try again`,
    );
  }

  const statusBefore = status;
  let reserved = false;
  /** The reserve command, once issued: a signal or a timeout can come while it is in flight. */
  let reserveCall: Promise<RunResult> | null = null;
  const releaseNow = async (): Promise<void> => {
    if (!reserved && reserveCall) {
      // In flight or unanswered: it holds only if it succeeds. Still no answer: keep the record (this pid will be
      // dead), so the next run releases whatever the reserve took.
      const ok = await withTimeout(reserveCall, messageArgv(loc.pool, 'reserve_metadata_snap'), t).then(
        (r) => r.code === 0,
        (e: unknown) => (e instanceof DmiError && e.details?.timeout ? null : false),
      );
      if (ok === null)
        throw new DmiError(
          'CONFLICT',
          `pool ${loc.pool}: reserve_metadata_snap got no answer; the hold record ${holdFile(opts.stateDir, loc.pool)} stays and the next dminspect run releases the snapshot`,
        );
      reserved = ok;
    }
    if (!reserved) {
      removeHold(opts.stateDir, loc.pool);
      return;
    }
    const r = await run(host, messageArgv(loc.pool, 'release_metadata_snap'), t, opts.log).catch((e: unknown) => ({
      code: -1,
      stdout: '',
      stderr: e instanceof Error ? e.message : String(e),
    }));
    if (r.code === 0 || /Invalid argument|No data available/.test(r.stderr)) {
      // released (or nothing left to release): the record goes too
      reserved = false;
      removeHold(opts.stateDir, loc.pool);
      return;
    }
    // Not released: the record stays, naming this (soon dead) pid, so the next run clears the hold.
    throw new DmiError(
      'CONFLICT',
      `pool ${loc.pool}: release_metadata_snap failed: ${firstUsefulLine(r.stderr) ?? `exit ${r.code}`}; the next dminspect run releases it (hold record ${holdFile(opts.stateDir, loc.pool)})`,
    );
  };
  let releasing: Promise<void> | null = null;
  const release = (): Promise<void> => (releasing ??= releaseNow());
  // A signal while holding: release, then exit as the signal would have (128 + n). During a read in a worker
  // thread (a HeldTask) this thread is free and handles it at once; a read on this thread (a plain function)
  // is not interrupted: the signal is handled when it returns.
  const onSignal = (sig: NodeJS.Signals): void => {
    void release()
      .catch(() => {})
      .finally(() => process.exit(128 + (os.constants.signals[sig] ?? 15)));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const argv = messageArgv(loc.pool, 'reserve_metadata_snap');
    opts.log?.(`+ ${shellLine(argv)}`);
    reserveCall = host.run(argv);
    const r = await withTimeout(reserveCall, argv, t);
    if (r.code !== 0) {
      const why = firstUsefulLine(r.stderr) ?? `exit ${r.code}`;
      if (/busy/i.test(why))
        throw new DmiError(
          'CONFLICT',
          `pool ${loc.pool}: the kernel refused reserve_metadata_snap (${why}): another holder took the snapshot; pass --metadata-snap to read it`,
        );
      throw new DmiError(
        /ermission denied|not permitted/i.test(why) ? 'PERMISSION' : 'CONFLICT',
        `${shellLine(messageArgv(loc.pool, 'reserve_metadata_snap'))}: ${why}`,
      );
    }
    reserved = true;
    const held = await host.poolStatus(loc.pool, { timeoutMs: t, log: opts.log });
    if (held === null) throw new DmiError('NOT_FOUND', `pool ${loc.pool} went away while held`);
    if (held.heldMetadataRoot === null)
      throw new DmiError(
        'CONFLICT',
        `pool ${loc.pool}: reserve_metadata_snap answered but dmsetup status shows no held root`,
      );
    updateHold(opts.stateDir, { ...rec, heldRoot: held.heldMetadataRoot });
    if (opts.holdDelayMs) await new Promise((res) => setTimeout(res, opts.holdDelayMs));
    await flush(host, loc, t, opts.log);
    const heldRoot = held.heldMetadataRoot;
    const value = await readHeld(
      read,
      { metadata: loc.metadata, status: held, statusBefore, heldRoot, reserved: true, staleCleared },
      loc,
      opts,
    );
    return { value, status: held, statusBefore, heldRoot: held.heldMetadataRoot, reserved: true, staleCleared };
  } finally {
    try {
      await release();
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
  }
}

/** BLKFLSBUF on the metadata block device (not needed for a loop's backing file: see the header). */
async function flush(host: DmHost, loc: LiveLocation, t: number, log?: (l: string) => void): Promise<void> {
  if (loc.coherence !== 'flushbufs' || !loc.metadataDevice.path) return;
  const r = await run(host, ['blockdev', '--flushbufs', loc.metadataDevice.path], t, log);
  if (r.code !== 0)
    throw new DmiError(
      'PERMISSION',
      `blockdev --flushbufs ${loc.metadataDevice.path}: ${firstUsefulLine(r.stderr) ?? `exit ${r.code}`} (needed to read the kernel's writes, not stale cached pages)`,
    );
}

/**
 * How the held snapshot is read: a function on this thread (not interruptible: the timeout and signals wait for
 * it), or a task for a worker thread (held-read.ts) with the same read on this thread as `local`, used where no
 * worker can run the task's module (unit tests on the sources, the Bun binary).
 */
export type HeldRead<T> = ((held: HeldView) => T) | { task: HeldTask; local: (held: HeldView) => T };

const DEFAULT_READ_TIMEOUT_MS = 300_000;

/**
 * The held trees do not change while held, but block 0 is rewritten at every commit: a read that raced a
 * commit can see a torn superblock (bad checksum). Such reads are retried; a held block that fails is real.
 */
function retryable(e: unknown): boolean {
  const block = e instanceof DmiError ? (e.details as { block?: number } | undefined)?.block : undefined;
  return e instanceof DmiError && e.code === 'BAD_INPUT' && (block === 0 || block === undefined);
}

/** Runs the read (in a worker when it can, bounded by the read timeout), retrying a torn superblock read. */
async function readHeld<T>(read: HeldRead<T>, view: HeldView, loc: LiveLocation, opts: LiveOptions): Promise<T> {
  const tries = 3;
  if (typeof read === 'function' || !heldTaskRunsInWorker(read.task)) {
    const local = typeof read === 'function' ? read : read.local;
    for (let i = 1; ; i++) {
      try {
        return local(view);
      } catch (e) {
        if (i >= tries || !retryable(e)) throw e;
      }
    }
  }
  const timeoutMs = opts.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  for (let i = 1; ; i++) {
    const w = startWorkerRead<T>(read.task, view, opts.readDelayMs);
    try {
      return await withDeadline(
        w.result,
        timeoutMs,
        () =>
          new DmiError(
            'CONFLICT',
            `pool ${loc.pool}: reading the held metadata (${loc.metadata}) took longer than ${timeoutMs / 1000} s; abandoned, the snapshot is released`,
            { timeout: true, metadata: loc.metadata },
          ),
      );
    } catch (e) {
      w.abandon();
      if (i >= tries || !retryable(e)) throw e;
    }
  }
}

/** Where the root's pool is when the kernel has it active; null: read the files (not active, or cannot ask). */
export async function locateRootLive(
  rootDir: string | null,
  opts: LiveChoice,
  host: DmHost,
): Promise<LiveLocation | null> {
  const name = livePoolName(rootDir, opts);
  if (name === null || !host.hasDeviceMapper()) return null;
  try {
    return await locateLive(host, name, { stepTimeoutMs: opts.stepTimeoutMs, log: opts.log, sysfs: opts.sysfs });
  } catch (e) {
    // Not root, or no dmsetup: the kernel cannot be asked; the files are read as before (reports say so).
    // An explicit --pool the kernel should answer for is an error the user needs to see.
    if (e instanceof DmiError && (e.code === 'PERMISSION' || e.code === 'UNSUPPORTED') && !opts.pool) {
      opts.log?.(`not read live: ${e.message}`);
      return null;
    }
    throw e;
  }
}

/**
 * Runs `fn` on the root's pool: live, inside a held snapshot (`fn` gets the location and whether a snapshot root
 * is held), or with null (read the files). For `container` and `devices`. With `task`, the held read runs in a
 * worker thread (held-read.ts: the task's function gets the view last and must do what `fn(loc, held)` does).
 */
export async function withRootPool<T>(
  host: DmHost,
  rootDir: string | null,
  opts: LiveChoice & { stateDir: string },
  fn: (loc: LiveLocation | null, held: boolean) => T,
  task?: (loc: LiveLocation) => HeldTask,
): Promise<T> {
  const loc = await locateRootLive(rootDir, opts, host);
  if (!loc) return fn(null, false);
  const local = (v: HeldView): T => fn(loc, v.heldRoot !== null);
  const r = await withHeldSnapshot(
    host,
    loc,
    { stateDir: opts.stateDir, stepTimeoutMs: opts.stepTimeoutMs, log: opts.log },
    task ? { task: task(loc), local } : local,
  );
  return r.value;
}
