import type { Command } from 'commander';
import { containerReportLive, type ContainerReport } from '../../model/container.js';
import { humanBytes } from '../../util/units.js';
import { addPoolUsageOptions, withPoolUsage, type PoolUsageOptions } from '../shared.js';
import { addCommonOptions, isHostRoot, namingOptions, openRoot } from '../options.js';
import { keyValues, printJson, short, table, type Out } from '../render.js';

export function renderContainer(r: ContainerReport): string {
  const d = r.device;
  const lines = [
    keyValues([
      ['container', r.id],
      ['name', r.name],
      [
        'image',
        `${r.image.names.join(', ') || r.image.configImage || '-'}${r.image.id ? ` (sha256:${short(r.image.id)})` : ''}`,
      ],
      ['state', r.state.status + (r.state.exitCode !== null && !r.state.running ? ` (exit ${r.state.exitCode})` : '')],
      ['created', r.created],
      ['layout', r.layout === 'v2' ? 'config.v2.json (Docker >= 1.10)' : 'config.json (Docker < 1.10)'],
      ['mount id', r.mountId],
      ['device id', d?.deviceId],
      ['size', d ? `${d.size} bytes = ${d.sectors} sectors (${d.sizeHuman})` : null],
      ['device', d?.name],
      ['device path', d ? `${d.devPath}${d.active ? ' (active)' : ' (not active)'}` : null],
      ['pool', `${r.pool.name} (${r.pool.nameSource === 'stat' ? 'derived from the driver home' : r.pool.nameSource})`],
      [
        'record',
        d
          ? `${d.recordFile} (transaction ${d.transactionId}, initialized ${d.initialized}, deleted ${d.deleted ?? 'n/a'})`
          : null,
      ],
      ['init device', r.init ? `${r.init.hash} (device id ${r.init.deviceId ?? 'no record'})` : null],
      ['mounted', r.mount.mounted ? `yes: ${r.mount.mountedAt.join(', ')}` : `no (${r.mount.path})`],
      [
        'pool usage',
        r.usage
          ? `${humanBytes(r.usage.mappedBytes)} mapped, ${humanBytes(r.usage.exclusiveBytes)} exclusive, ${humanBytes(r.usage.sharedBytes)} shared`
          : null,
      ],
      ['table', d ? d.table : null],
      [
        'daemon',
        r.daemon
          ? `${r.daemon.host} (Docker ${r.daemon.version ?? '?'}): ${r.daemon.findings.length ? 'DISAGREES' : 'agrees with the records'}`
          : 'not asked',
      ],
    ]),
  ];
  for (const f of r.daemon?.findings ?? []) lines.push(`daemon finding: ${f}`);
  if (r.layers.length) {
    lines.push('', `image layers (top first):`);
    lines.push(
      table(
        ['chain id', 'cache id (device hash)', 'device id'],
        r.layers.map((l) => [short(l.chainId), short(l.cacheId), l.deviceId]),
      ),
    );
  }
  for (const p of r.problems) lines.push(`warning: ${p}`);
  return lines.join('\n');
}

export function register(program: Command, io: Out): void {
  const cmd = addCommonOptions(
    program
      .command('container')
      .description('show how a container maps to its thin device: ids, size, names, table, layers')
      .argument('<ref>', 'container id, unique id prefix, or name'),
  )
    .option(
      '--host <url>',
      "Docker daemon to cross-check with (default: DOCKER_HOST or the default socket, when --root is the host's own root)",
    )
    .option('--no-daemon', 'do not ask the live daemon');
  addPoolUsageOptions(cmd, 'figures').action(
    async (ref: string, opts: PoolUsageOptions & { host?: string; daemon: boolean }) => {
      const root = openRoot(opts);
      const useDaemon = opts.daemon && (opts.host !== undefined || isHostRoot(opts));
      const base = await containerReportLive(root, ref, { ...namingOptions(opts), host: opts.host, useDaemon });
      // the pool readers load only when the root has a pool to read
      const report = await withPoolUsage(root, opts, base, async () => {
        const { attachUsage, CONTAINER_USAGE_MODULE } = await import('../../model/container-usage.js');
        return { attach: attachUsage, task: { module: CONTAINER_USAGE_MODULE, fn: 'heldContainerUsage' } };
      });
      if (opts.json) printJson(io, report);
      else io.out(renderContainer(report));
    },
  );
}
