import * as path from 'node:path';
import { Option, type Command } from 'commander';
import { resolveNaming } from '../../docker/naming.js';
import { DockerRoot } from '../../docker/root.js';
import { DmiError } from '../../errors.js';
import {
  errorLabel,
  readLastSuccess,
  renderFailureMetrics,
  renderMetrics,
  TEXTFILE_NAME,
  writeTextfileAtomic,
} from '../../audit/metrics.js';
import { poolAuditLive } from '../../audit/live.js';
import { DmHost } from '../../dm/host.js';
import { DEFAULT_STATE_DIR } from '../../forensics/state.js';
import { SORT_FIELDS, sortDevices, type PoolReport, type SortField, type SpaceFacts } from '../../audit/pool.js';
import { KERNEL_RULES, type KernelRule } from '../../thin/index.js';
import { humanBytes } from '../../util/units.js';
import { addCommonOptions, namingOptions, type CommonOptions } from '../options.js';
import { keyValues, printJson, table, type Out, renderFindings } from '../render.js';
import { collect } from '../shared.js';

interface PoolCliOptions extends CommonOptions {
  metadata?: string;
  data?: string;
  metadataSnap?: boolean;
  sort: SortField;
  kernelRule: KernelRule;
  top?: string;
  format: PoolFormat;
  textfile?: string;
  image: string[];
  live: boolean;
  dryRun?: boolean;
  stateDir: string;
}

/** Test hook for the kernel suite: hold the metadata snapshot this many ms before reading (a run killed meanwhile). */
const HOLD_HOOK = 'DMINSPECT_TEST_HOLD_MS';
/** Test hook: the read's worker thread waits this many ms before reading (a slow read, interrupted meanwhile). */
const READ_HOOK = 'DMINSPECT_TEST_READ_MS';

export const POOL_FORMATS = ['table', 'json', 'prometheus'] as const;
export type PoolFormat = (typeof POOL_FORMATS)[number];

function spaceLine(s: SpaceFacts, unit: string): string {
  return `${humanBytes(s.usedBytes)} of ${humanBytes(s.totalBytes)} used (${s.usedPercent}%), ${humanBytes(s.freeBytes)} free — ${s.usedBlocks}/${s.totalBlocks} ${unit} blocks`;
}

function liveLines(r: PoolReport): [string, string | number][] {
  const l = r.live;
  if (!l) return [['source', 'files (not active in the kernel, or --no-live): read as they lie on disk']];
  const s = l.status;
  return [
    [
      'source',
      `live: active in the kernel (${l.kernelRelease}); ${l.heldRoot === null ? `read without a hold (a ${s.mode} pool takes no messages and commits nothing)` : `read through ${l.reservedByDminspect ? "dminspect's own held metadata snapshot (released)" : 'the metadata snapshot another holder holds (--metadata-snap)'} at block ${l.heldRoot}`}, from ${l.coherence === 'loop-backing-file' ? "the loop's backing file" : 'the block device after blockdev --flushbufs'}`,
    ],
    [
      'mode',
      `${s.mode}${s.needsCheck ? ', needs_check' : ''}${s.noSpace ? `, ${s.noSpace}` : ''}${s.discardPassdown === null ? '' : s.discardPassdown ? ', discard_passdown' : ', no_discard_passdown'}`,
    ],
    [
      'kernel status',
      `transaction ${s.transactionId}; data ${s.usedDataBlocks}/${s.totalDataBlocks}; metadata ${s.usedMetadataBlocks}/${s.totalMetadataBlocks}; held root ${s.heldMetadataRoot ?? '-'}; metadata low water mark ${s.metadataLowWatermark ?? '-'}`,
    ],
    ...(l.daemon
      ? ([
          [
            'docker info',
            `${l.daemon.serverVersion ?? '?'}: ${l.daemon.compared.map((c) => `${c.field} ${c.docker}${c.agree ? '' : ` (kernel: ${c.dminspect})`}`).join(', ')}`,
          ],
        ] as [string, string][])
      : []),
    [
      'kernel table',
      `block ${l.table.blockSectors} sectors, low water mark ${l.table.lowWaterMark}, features ${l.table.features.join(' ') || '-'} (metadata ${l.metadataDevice}, data ${l.dataDevice})`,
    ],
  ];
}

export function renderPool(r: PoolReport): string {
  const out: string[] = [];
  out.push(
    keyValues([
      ['pool', r.poolName ?? '-'],
      ...liveLines(r),
      ['metadata', `${r.metadataFile}${r.metadataSnap ? ' (held metadata snapshot)' : ''} — version ${r.version}`],
      ['data', spaceLine(r.data, humanBytes(r.dataBlockBytes))],
      [
        'metadata space',
        `${spaceLine(r.metadata, '4 KiB')} as the kernel counts it: ${r.metadata.allocatedBlocks} allocated on disk + ${r.metadata.reserveBlocks} reserved (${r.metadata.kernelRule === 'kernel' ? 'kernel (dmsetup status)' : r.metadata.kernelRule === 'reserve' ? 'Linux ≥ 4.20 rule' : 'no reserve: --kernel-rule none'})`,
      ],
      ['block size', `${r.dataBlockSectors} sectors (${humanBytes(r.dataBlockBytes)})`],
      ['transaction id', r.transactionId],
      ['pool time', r.time],
      ['needs_check', r.needsCheck ? 'YES' : 'no'],
      ['metadata snapshot', r.heldMetadataSnapshot === null ? 'none held' : `held at block ${r.heldMetadataSnapshot}`],
      ...(r.lvm
        ? ([
            [
              'lvm',
              `${r.lvm.vg}/${r.lvm.lv} (${r.lvm.metadataLv}, ${r.lvm.dataLv}); LVM transaction_id ${r.lvm.transactionId}, chunk ${humanBytes(r.lvm.chunkSizeBytes)}`,
            ],
          ] as [string, string][])
        : []),
    ]),
  );
  out.push('');
  out.push(
    table(
      ['DEVICE', 'DOCKER', 'MAPPED', 'EXCLUSIVE', 'SHARED', 'TXN', 'CREATED', 'SNAP'],
      r.devices.map((d) => [
        d.deviceId,
        d.owner,
        humanBytes(d.mappedBytes),
        humanBytes(d.exclusiveBytes),
        humanBytes(d.sharedBytes),
        d.transactionId,
        d.creationTime,
        d.snapTime,
      ]),
    ),
  );
  out.push('');
  out.push(...renderFindings(r.findings));
  for (const p of r.spaceMapProblems) out.push(`note: ${p}`);
  return out.join('\n');
}

export function register(program: Command, io: Out): void {
  addCommonOptions(
    program.command('pool').description('audit the thin pool from its own metadata: space, per-device usage, findings'),
  )
    .option('--metadata <file>', 'pool metadata file or device (default: <root>/devicemapper/devicemapper/metadata)')
    .option(
      '--image <file>',
      'direct-lvm: a disk image (or block device) holding the LVM thin pool; repeat for a VG on several disks',
      collect,
      [],
    )
    .option('--data <file>', 'pool data file or device (default: <root>/devicemapper/devicemapper/data)')
    .option(
      '--metadata-snap',
      'read the metadata snapshot someone else holds (dmsetup message <pool> 0 reserve_metadata_snap), without reserving or releasing; on a live pool dminspect otherwise holds its own',
    )
    .addOption(
      new Option(
        '--kernel-rule <rule>',
        'how the kernel counts metadata space: reserve (Linux >= 4.20: min(total/10, 4096) blocks count as used) or none (older kernels)',
      )
        .choices([...KERNEL_RULES])
        .default('reserve'),
    )
    .addOption(new Option('--sort <field>', 'sort devices by').choices([...SORT_FIELDS]).default('exclusive'))
    .option('--top <n>', 'show only the first N devices')
    .addOption(
      new Option('--format <format>', 'output format (--json is --format json)')
        .choices([...POOL_FORMATS])
        .default('table'),
    )
    .option('--no-live', 'read the pool files as they lie on disk even when the kernel has the pool active')
    .option(
      '--dry-run',
      'print the commands a live read runs (reserve / release the metadata snapshot) and change nothing',
    )
    .option('--state-dir <dir>', 'where dminspect records its metadata-snapshot hold', DEFAULT_STATE_DIR)
    .option(
      '--textfile <dir>',
      `write Prometheus metrics to <dir>/${TEXTFILE_NAME} atomically, for node_exporter's textfile collector (prints nothing else unless --format or --json is given)`,
    )
    .action((opts: PoolCliOptions, cmd: Command) => runPool(opts, cmd, io));
}

function openRootFor(opts: PoolCliOptions, cmd: Command): DockerRoot | null {
  const rootGiven = cmd.getOptionValueSource('root') !== 'default';
  if (rootGiven || (!opts.metadata && !opts.image.length && !opts.pool)) return DockerRoot.open(opts.root);
  try {
    return DockerRoot.open(opts.root);
  } catch {
    return null; // --metadata or --image alone: no Docker root to join with
  }
}

/** The pool's name for the `pool` label when the audit failed: as the audit would have named it, if it can. */
function poolNameAfterFailure(opts: PoolCliOptions, cmd: Command): string | null {
  try {
    const root = openRootFor(opts, cmd);
    if (root) return resolveNaming(root.root, namingOptions(opts)).poolName;
  } catch {
    // the root itself is what failed
  }
  return opts.pool ?? null;
}

async function runPool(opts: PoolCliOptions, cmd: Command, io: Out): Promise<void> {
  const started = process.hrtime.bigint();
  const formatGiven = cmd.getOptionValueSource('format') === 'cli' || !!opts.json;
  if (opts.json && cmd.getOptionValueSource('format') === 'cli' && opts.format !== 'json') {
    throw new DmiError('USAGE', `--json and --format ${opts.format}: choose one`);
  }
  const format: PoolFormat = opts.json ? 'json' : opts.format;
  if (opts.top !== undefined && !/^\d+$/.test(opts.top))
    throw new DmiError('USAGE', `--top ${JSON.stringify(opts.top)}: expected a number`);
  const textfileDir = opts.textfile === undefined ? null : path.resolve(opts.textfile);
  const metricsWanted = textfileDir !== null || format === 'prometheus';
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;

  let report: PoolReport;
  try {
    const hold = process.env[HOLD_HOOK];
    const r = await poolAuditLive(
      openRootFor(opts, cmd),
      {
        ...namingOptions(opts),
        metadata: opts.metadata,
        data: opts.data,
        metadataSnap: opts.metadataSnap,
        images: opts.image,
        kernelRule: opts.kernelRule,
        live: opts.live,
        dryRun: opts.dryRun,
        stateDir: path.resolve(opts.stateDir),
        holdDelayMs: hold && /^\d+$/.test(hold) ? Number(hold) : undefined,
        readDelayMs: /^\d+$/.test(process.env[READ_HOOK] ?? '') ? Number(process.env[READ_HOOK]) : undefined,
        log: opts.debug ? (l) => io.err(l) : undefined,
      },
      new DmHost(),
    );
    if (r.dryRun) {
      if (opts.json) printJson(io, { dryRun: true, live: r.live, plan: r.plan });
      else io.out(r.plan);
      return;
    }
    report = r.report;
  } catch (e) {
    if (!metricsWanted) throw e;
    // The pool cannot be read: the metrics still say so (dminspect_up 0), and the exit status is the error's.
    const lastSuccess = textfileDir === null ? null : readLastSuccess(path.join(textfileDir, TEXTFILE_NAME));
    const text = renderFailureMetrics(poolNameAfterFailure(opts, cmd), errorLabel(e), {
      durationSeconds: seconds(),
      lastSuccessSeconds: lastSuccess,
    });
    if (textfileDir !== null) {
      try {
        writeTextfileAtomic(textfileDir, text);
      } catch (w) {
        if (e instanceof DmiError) io.err(`dminspect: ${e.message}`);
        throw w;
      }
    }
    if (format === 'prometheus' && (formatGiven || textfileDir === null)) io.out(text);
    throw e;
  }
  report.devices = sortDevices(report.devices, opts.sort);
  if (opts.top !== undefined) report.devices = report.devices.slice(0, Number(opts.top));
  let text: string | null = null;
  if (metricsWanted) {
    text = renderMetrics(
      report,
      { durationSeconds: seconds(), lastSuccessSeconds: Date.now() / 1000 },
      report.poolName ?? opts.pool ?? null,
    );
    if (textfileDir !== null) writeTextfileAtomic(textfileDir, text);
  }
  if (textfileDir !== null && !formatGiven) return;
  if (format === 'json') printJson(io, report);
  else if (format === 'prometheus') io.out(text!);
  else io.out(renderPool(report));
}
