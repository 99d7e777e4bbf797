/**
 * The pool audit as Prometheus metrics (text exposition format 0.0.4), for node_exporter's textfile collector
 * (`dminspect pool --textfile DIR`) or any scraper (`--format prometheus`).
 *
 * Label sets are bounded: `pool`; per device `device_id`, `role` (fixed list), `container` (a container name,
 * truncated) and `container_id` (12 hex digits); findings `kind` × `severity` (fixed lists); `error` (an
 * ErrorCode or `internal`). No device hashes, file names or messages become label values.
 */
import * as fs from 'node:fs';
import { DmiError, type ErrorCode } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { Severity } from '../finding.js';
import type { PoolFindingKind } from './findings.js';
import { LIVE_FINDING_SEVERITIES, type LiveFindingKind } from './live-rules.js';
import type { PoolDevice, PoolReport } from './pool.js';

/** The textfile collector reads `*.prom`; the temporary file does not end in `.prom`, so it is never read. */
export const TEXTFILE_NAME = 'dminspect.prom';

/** Every finding kind with the severities it can have, so each series exists (at 0) before it fires. */
export const FINDING_SEVERITIES = {
  'needs-check': ['critical'],
  'data-space-low': ['critical'],
  'metadata-space-low': ['critical'],
  'orphan-device': ['warning'],
  'unreferenced-record': ['warning', 'info'],
  'record-without-device': ['warning'],
  'record-transaction-ahead': ['warning'],
  'open-transaction': ['warning'],
  'bad-record': ['warning'],
  'deleted-record': ['info'],
  'stale-transaction': ['info'],
  'next-device-id-behind': ['info'],
  'mnt-without-record': ['info'],
  'stale-tmp-file': ['info'],
  ...LIVE_FINDING_SEVERITIES,
} as const satisfies Record<PoolFindingKind | LiveFindingKind, readonly Severity[]>;

/** `mode` label values of dminspect_pool_mode (a live pool: dmsetup status). */
export const POOL_MODES = ['rw', 'ro', 'out_of_data_space', 'fail'] as const;

/** `role` label values: Docker's role of a thin device (`unknown` only without a Docker root: `--metadata` alone). */
export const ROLE_LABELS = ['container', 'image_layer', 'init', 'base', 'orphan', 'unreferenced', 'unknown'] as const;
export type RoleLabel = (typeof ROLE_LABELS)[number];

const ROLE: Record<PoolDevice['role'], RoleLabel> = {
  container: 'container',
  layer: 'image_layer',
  init: 'init',
  base: 'base',
  orphan: 'orphan',
  unreferenced: 'unreferenced',
  unknown: 'unknown',
};

/** `error` label values of `dminspect_up 0`. */
export type ErrorLabel = ErrorCode | 'internal';

/** Longest container name kept as a label value (Docker names are short; a hostile root's are cut). */
const MAX_NAME = 128;

type Labels = [string, string][];

interface Sample {
  labels: Labels;
  value: number;
}

interface Family {
  name: string;
  help: string;
  samples: Sample[];
}

/** Escapes a label value: backslash, double quote and line feed (exposition format 0.0.4). */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Escapes HELP text: backslash and line feed. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function renderFamilies(families: Family[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
    lines.push(`# TYPE ${f.name} gauge`);
    for (const s of f.samples) {
      const labels = s.labels.length ? `{${s.labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}` : '';
      lines.push(`${f.name}${labels} ${formatValue(s.value)}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** A container name safe as a label value: no control characters, at most MAX_NAME characters. */
function nameLabel(name: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = name.replace(/^\//, '').replace(/[\u0000-\u001f\u007f]/g, '?');
  return [...clean].slice(0, MAX_NAME).join('');
}

function deviceLabels(pool: Labels, d: PoolDevice): Labels {
  const l: Labels = [...pool, ['device_id', String(d.deviceId)], ['role', ROLE[d.role]]];
  if (d.containerName) l.push(['container', nameLabel(d.containerName)]);
  if (d.containerId && /^[0-9a-f]{12}/i.test(d.containerId))
    l.push(['container_id', d.containerId.slice(0, 12).toLowerCase()]);
  return l;
}

export interface RunFacts {
  /** Seconds this run took (audit and rendering). */
  durationSeconds: number;
  /** Unix time in seconds of the last successful audit: now on success, carried over on failure (or none). */
  lastSuccessSeconds: number | null;
}

function runFamilies(pool: Labels, up: Sample, run: RunFacts): Family[] {
  const out: Family[] = [
    {
      name: 'dminspect_up',
      help: 'Whether the last dminspect run could read the pool (1) or not (0, with the error code as label error).',
      samples: [up],
    },
    {
      name: 'dminspect_run_duration_seconds',
      help: 'Wall-clock duration of the last dminspect run.',
      samples: [{ labels: pool, value: run.durationSeconds }],
    },
  ];
  if (run.lastSuccessSeconds !== null) {
    out.push({
      name: 'dminspect_last_success_timestamp_seconds',
      help: 'Unix time of the last run that read the pool successfully.',
      samples: [{ labels: pool, value: run.lastSuccessSeconds }],
    });
  }
  return out;
}

/** The pool report as exposition text (every family a gauge; no counters, so no `_total`). */
export function renderMetrics(r: PoolReport, run: RunFacts, poolName: string | null = r.poolName): string {
  const pool: Labels = [['pool', poolName ?? '']];
  const g = (name: string, help: string, value: number): Family => ({ name, help, samples: [{ labels: pool, value }] });
  const counts = new Map<string, number>();
  for (const f of r.findings) counts.set(`${f.kind}\0${f.severity}`, (counts.get(`${f.kind}\0${f.severity}`) ?? 0) + 1);
  const findings: Sample[] = [];
  for (const [kind, severities] of Object.entries(FINDING_SEVERITIES) as [
    PoolFindingKind | LiveFindingKind,
    readonly Severity[],
  ][]) {
    for (const severity of severities) {
      findings.push({
        labels: [...pool, ['kind', kind], ['severity', severity]],
        value: counts.get(`${kind}\0${severity}`) ?? 0,
      });
      counts.delete(`${kind}\0${severity}`);
    }
  }
  for (const [key, n] of counts) {
    // a kind or severity this table does not know yet: still exported
    const [kind, severity] = key.split('\0') as [string, string];
    findings.push({ labels: [...pool, ['kind', kind], ['severity', severity]], value: n });
  }
  const devices = [...r.devices].sort((a, b) => a.deviceId - b.deviceId);
  const families: Family[] = [
    ...runFamilies(pool, { labels: pool, value: 1 }, run),
    g('dminspect_pool_data_bytes', 'Size of the thin pool data device.', r.data.totalBytes),
    g(
      'dminspect_pool_data_used_bytes',
      'Bytes of the thin pool data device in use (allocated data blocks).',
      r.data.usedBytes,
    ),
    g('dminspect_pool_metadata_bytes', 'Size of the thin pool metadata device.', r.metadata.totalBytes),
    g(
      'dminspect_pool_metadata_used_bytes',
      "Bytes of the thin pool metadata device in use as the kernel counts it (dmsetup status): allocated plus the kernel's reserve (Linux >= 4.20).",
      r.metadata.usedBytes,
    ),
    g(
      'dminspect_pool_metadata_allocated_bytes',
      'Bytes of the thin pool metadata device allocated on disk (the metadata space map).',
      r.metadata.allocatedBlocks * 4096,
    ),
    g(
      'dminspect_pool_metadata_reserve_bytes',
      'Bytes of metadata the kernel holds back and counts as used (min(total/10, 16 MiB) since Linux 4.20; 0 with --kernel-rule none).',
      r.metadata.reserveBlocks * 4096,
    ),
    g('dminspect_pool_data_block_bytes', 'Size of one thin pool data block.', r.dataBlockBytes),
    g(
      'dminspect_pool_transaction_id',
      "The pool's transaction id (Docker increments it with every device create and delete).",
      r.transactionId,
    ),
    g(
      'dminspect_pool_needs_check',
      'Whether the kernel set needs_check on the pool (1): it stays read-only until repaired.',
      r.needsCheck ? 1 : 0,
    ),
    g(
      'dminspect_pool_metadata_snapshot_held',
      'Whether a metadata snapshot is held (reserve_metadata_snap) (1) or not (0).',
      r.heldMetadataSnapshot === null ? 0 : 1,
    ),
    g('dminspect_pool_thin_devices', 'Number of thin devices in the pool.', r.devices.length),
    g(
      'dminspect_pool_live',
      'Whether the pool was read live (1: active in the kernel, through a held metadata snapshot, figures from dmsetup status) or from its files (0).',
      r.live ? 1 : 0,
    ),
    ...(r.live
      ? [
          {
            name: 'dminspect_pool_mode',
            help: "The live pool's mode as dmsetup status says it (1 for the current mode): rw, ro, out_of_data_space, fail.",
            samples: POOL_MODES.map((m) => ({
              labels: [...pool, ['mode', m]] as Labels,
              value: r.live!.status.mode === m ? 1 : 0,
            })),
          },
          g(
            'dminspect_pool_queue_if_no_space',
            'Whether the live pool queues writes when out of data space (1: queue_if_no_space, writes hang) or errors them (0).',
            r.live.status.noSpace === 'queue_if_no_space' ? 1 : 0,
          ),
        ]
      : []),
    {
      name: 'dminspect_device_mapped_bytes',
      help: 'Bytes mapped by a thin device (thin_ls MAPPED_BLOCKS × block size), with its role to Docker.',
      samples: devices.map((d) => ({ labels: deviceLabels(pool, d), value: d.mappedBytes })),
    },
    {
      name: 'dminspect_device_exclusive_bytes',
      help: 'Bytes mapped by this thin device only (thin_ls EXCLUSIVE_BLOCKS × block size): what deleting it frees.',
      samples: devices.map((d) => ({ labels: deviceLabels(pool, d), value: d.exclusiveBytes })),
    },
    {
      name: 'dminspect_findings',
      help: 'Number of pool audit findings of each kind and severity (0 when absent).',
      samples: findings,
    },
  ];
  return renderFamilies(families);
}

/** The exposition of a run that could not read the pool: `dminspect_up 0` with the error code, duration, last success. */
export function renderFailureMetrics(poolName: string | null, error: ErrorLabel, run: RunFacts): string {
  const pool: Labels = [['pool', poolName ?? '']];
  return renderFamilies(runFamilies(pool, { labels: [...pool, ['error', error]], value: 0 }, run));
}

/** The error label of a thrown value: its DmiError code, or `internal` for a bug. */
export function errorLabel(e: unknown): ErrorLabel {
  return e instanceof DmiError ? e.code : 'internal';
}

/** `dminspect_last_success_timestamp_seconds` of a previous textfile, or null (none, unreadable, no such series). */
export function readLastSuccess(file: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const m = /^dminspect_last_success_timestamp_seconds(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?[ \t]+(\S+)[ \t]*$/m.exec(
    text,
  );
  if (!m) return null;
  const v = Number(m[1]);
  return Number.isFinite(v) && v > 0 ? v : null;
}

/**
 * Writes `dir/dminspect.prom` atomically: a temporary file in the same directory (not ending in `.prom`), fsync, rename
 * over the target, fsync of the directory. A reader sees the old file or the new one, never a part.
 */
export function writeTextfileAtomic(dir: string, content: string): string {
  return writeFileAtomic(dir, TEXTFILE_NAME, content, 'the metrics textfile');
}
