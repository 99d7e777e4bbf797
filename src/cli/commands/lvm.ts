/** `dminspect lvm --image FILE [--image FILE2]`: what LVM holds on raw disk images (direct-lvm hosts), offline. */
import type { Command } from 'commander';
import { resolveNaming } from '../../docker/naming.js';
import { DEFAULT_ROOT } from '../../docker/root.js';
import { DmiError } from '../../errors.js';
import { dockerPoolCheck, lvmListing, type LvmListing } from '../../audit/lvm.js';
import { humanBytes } from '../../util/units.js';
import { namingOptions, openRoot, type CommonOptions } from '../options.js';
import { keyValues, printJson, table, type Out, renderFindings } from '../render.js';
import { collect } from '../shared.js';

interface LvmCliOptions {
  image?: string[];
  json?: boolean;
  debug?: boolean;
}

export function renderLvm(r: LvmListing): string {
  const out: string[] = [];
  out.push(
    table(
      ['IMAGE', 'SIZE', 'TABLE', 'PV', 'AT BYTE', 'PV SIZE', 'VG'],
      r.pvs.map((p) => {
        const img = r.images.find((i) => i.path === p.image);
        return [
          p.image + (p.partition !== null ? ` (partition ${p.partition})` : ''),
          humanBytes(img?.size ?? 0),
          img?.partitionTable ?? 'none',
          p.uuid,
          p.start,
          humanBytes(p.deviceSize),
          p.vg,
        ];
      }),
    ),
  );
  for (const vg of r.vgs) {
    out.push('');
    out.push(
      keyValues([
        ['volume group', `${vg.name} (${vg.id})`],
        [
          'seqno',
          `${vg.seqno}${vg.source.kind === 'older-copy' ? ' (OLDER COPY: the committed metadata is unusable)' : ''} from ${vg.source.image}`,
        ],
        ['extent size', `${vg.extentSize} sectors (${humanBytes(vg.extentBytes)})`],
      ]),
    );
    out.push(
      table(
        ['PV', 'UUID', 'PE START', 'PE COUNT', 'IMAGE', 'FIRST EXTENT AT'],
        vg.pvs.map((p) => [p.key, p.id, p.peStart, p.peCount, p.image ?? 'MISSING', p.offset]),
      ),
    );
    const rows: (string | number | null)[][] = [];
    for (const lv of vg.lvs) {
      lv.segments.forEach((s, i) => {
        const where = s.stripes.length
          ? s.stripes
              .map(
                (st) =>
                  `${st.pv}:${st.extent}-${st.extent + s.extentCount / s.stripes.length - 1}${st.offset !== null ? ` @${st.offset}` : ''}`,
              )
              .join(' ')
          : Object.entries(s.details)
              .map(([k, v]) => `${k}=${String(v)}`)
              .join(' ');
        rows.push([
          i === 0 ? (lv.visible ? lv.name : `[${lv.name}]`) : '',
          i === 0 ? humanBytes(lv.sizeBytes) : '',
          s.key,
          `${s.startExtent}+${s.extentCount}`,
          s.type === 'striped' && s.stripes.length === 1 ? 'linear' : s.type,
          where,
        ]);
      });
    }
    out.push(table(['LV', 'SIZE', 'SEGMENT', 'EXTENTS', 'TYPE', 'PV EXTENTS @ IMAGE BYTE / SETTINGS'], rows));
  }
  for (const t of r.thinPools) {
    const p = t.pool;
    out.push('');
    out.push(
      keyValues([
        ['thin pool', `${p.vg}/${p.lv} (dm name ${p.dmName})`],
        ['transaction id', `LVM ${p.transactionId}, superblock ${t.superblock ? t.superblock.transactionId : '-'}`],
        ['chunk size', `${p.chunkSizeSectors} sectors (${humanBytes(p.chunkSizeBytes)})`],
        [
          'metadata',
          `${p.metadataLv}: ${p.metadata ? `${humanBytes(p.metadata.length)} in ${p.metadata.extents.length} extent(s) of ${[...new Set(p.metadata.extents.map((e) => e.path))].join(', ')}` : 'NOT READABLE'}${t.superblock ? ` — ${t.superblock.metadataUsedPercent}% used` : ''}`,
        ],
        [
          'data',
          `${p.dataLv}: ${p.data ? `${humanBytes(p.data.length)} in ${p.data.extents.length} extent(s)` : 'NOT READABLE'}${t.superblock ? ` — ${t.superblock.dataUsedBlocks}/${t.superblock.dataNrBlocks} blocks used, ${t.superblock.thinDevices} thin devices` : ''}`,
        ],
        [
          'LVM thin LVs',
          p.thinVolumes.length
            ? p.thinVolumes.map((v) => `${v.name} (device ${v.deviceId}, ${humanBytes(v.sizeBytes)})`).join(', ')
            : 'none',
        ],
      ]),
    );
  }
  out.push('');
  out.push(...renderFindings(r.findings));
  return out.join('\n');
}

export function register(program: Command, io: Out): void {
  program
    .command('lvm')
    .description(
      'list LVM on raw disk images (direct-lvm hosts), offline: PVs, VGs, LVs with their extents, thin pools and transaction ids',
    )
    .option('--image <file>', 'disk image, partition image or block device (repeat for a VG on several disks)', collect)
    .option('--json', 'print JSON')
    .option(
      '--root <dir>',
      "a Docker root whose pool to point out (dm.thinpooldev, direct-lvm's docker-thinpool)",
      DEFAULT_ROOT,
    )
    .option('--pool <name>', 'the pool Docker uses, when its root does not say')
    .option('--daemon-config <file>', 'daemon.json to read dm.thinpooldev from')
    .option('--debug', 'show stack traces on errors')
    .action((opts: LvmCliOptions & CommonOptions, cmd: Command) => {
      if (!opts.image?.length) throw new DmiError('USAGE', 'lvm: give the disk image(s) with --image FILE');
      const r: LvmListing & { dockerPool?: { name: string; source: string; found: boolean } } = lvmListing(opts.image);
      // With an explicit --root (or --pool), say which thin pool is Docker's and whether the images hold it.
      if (cmd.getOptionValueSource('root') !== 'default' || opts.pool) {
        const naming = opts.pool
          ? { poolName: opts.pool.replace(/^\/dev\/mapper\//, ''), poolNameSource: 'option' }
          : resolveNaming(openRoot(opts).root, namingOptions(opts));
        const check = dockerPoolCheck(r, naming.poolName, naming.poolNameSource);
        r.dockerPool = check.dockerPool;
        if (check.finding) r.findings.push(check.finding);
      }
      if (opts.json) printJson(io, r);
      else
        io.out(
          [
            renderLvm(r),
            ...(r.dockerPool
              ? [
                  `Docker's pool: ${r.dockerPool.name} (${r.dockerPool.source})${r.dockerPool.found ? '' : ' — NOT FOUND in these images'}`,
                ]
              : []),
          ].join('\n'),
        );
    });
}
