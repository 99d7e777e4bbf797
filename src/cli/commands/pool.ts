import { Option, type Command } from 'commander';
import { DockerRoot } from '../../docker/root.js';
import { DmiError } from '../../errors.js';
import { poolAudit, SORT_FIELDS, sortDevices, type PoolReport, type SortField, type SpaceFacts } from '../../inspect/pool.js';
import { humanBytes } from '../../util/units.js';
import { addCommonOptions, namingOptions, type CommonOptions } from '../options.js';
import { keyValues, printJson, table, type Out } from '../render.js';

interface PoolCliOptions extends CommonOptions {
  metadata?: string;
  data?: string;
  metadataSnap?: boolean;
  sort: SortField;
  top?: string;
}

function spaceLine(s: SpaceFacts, unit: string): string {
  return `${humanBytes(s.usedBytes)} of ${humanBytes(s.totalBytes)} used (${s.usedPercent}%), ${humanBytes(s.freeBytes)} free — ${s.usedBlocks}/${s.totalBlocks} ${unit} blocks`;
}

export function renderPool(r: PoolReport): string {
  const out: string[] = [];
  out.push(
    keyValues([
      ['pool', r.poolName ?? '-'],
      ['metadata', `${r.metadataFile}${r.metadataSnap ? ' (held metadata snapshot)' : ''} — version ${r.version}`],
      ['data', spaceLine(r.data, humanBytes(r.dataBlockBytes))],
      ['metadata space', spaceLine(r.metadata, '4 KiB')],
      ['block size', `${r.dataBlockSectors} sectors (${humanBytes(r.dataBlockBytes)})`],
      ['transaction id', r.transactionId],
      ['pool time', r.time],
      ['needs_check', r.needsCheck ? 'YES' : 'no'],
      ['metadata snapshot', r.heldMetadataSnapshot === null ? 'none held' : `held at block ${r.heldMetadataSnapshot}`],
    ]),
  );
  out.push('');
  out.push(
    table(
      ['DEVICE', 'DOCKER', 'MAPPED', 'EXCLUSIVE', 'SHARED', 'TXN', 'CREATED', 'SNAP'],
      r.devices.map((d) => [d.deviceId, d.owner, humanBytes(d.mappedBytes), humanBytes(d.exclusiveBytes), humanBytes(d.sharedBytes), d.transactionId, d.creationTime, d.snapTime]),
    ),
  );
  out.push('');
  if (r.findings.length === 0) out.push('findings: none');
  else {
    out.push(`findings (${r.findings.length}):`);
    for (const f of r.findings) {
      out.push(`${f.severity.toUpperCase().padEnd(8)} ${f.message}`);
      out.push(`         remedy: ${f.remedy}`);
    }
  }
  for (const p of r.spaceMapProblems) out.push(`note: ${p}`);
  return out.join('\n');
}

export function register(program: Command, io: Out): void {
  addCommonOptions(program.command('pool').description("audit the thin pool from its own metadata: space, per-device usage, findings"))
    .option('--metadata <file>', 'pool metadata file or device (default: <root>/devicemapper/devicemapper/metadata)')
    .option('--data <file>', 'pool data file or device (default: <root>/devicemapper/devicemapper/data)')
    .option('--metadata-snap', 'read the held metadata snapshot (after dmsetup message <pool> 0 reserve_metadata_snap)')
    .addOption(new Option('--sort <field>', 'sort devices by').choices([...SORT_FIELDS]).default('exclusive'))
    .option('--top <n>', 'show only the first N devices')
    .action((opts: PoolCliOptions, cmd: Command) => {
      const rootGiven = cmd.getOptionValueSource('root') !== 'default';
      let root: DockerRoot | null = null;
      if (rootGiven || !opts.metadata) root = DockerRoot.open(opts.root);
      else {
        try {
          root = DockerRoot.open(opts.root);
        } catch {
          root = null; // --metadata alone: no Docker root to join with
        }
      }
      const report = poolAudit(root, { ...namingOptions(opts), metadata: opts.metadata, data: opts.data, metadataSnap: opts.metadataSnap });
      report.devices = sortDevices(report.devices, opts.sort);
      if (opts.top !== undefined) {
        if (!/^\d+$/.test(opts.top)) throw new DmiError('USAGE', `--top ${JSON.stringify(opts.top)}: expected a number`);
        report.devices = report.devices.slice(0, Number(opts.top));
      }
      if (opts.json) printJson(io, report);
      else io.out(renderPool(report));
    });
}
