import type { Command } from 'commander';
import { attachDeviceUsage, listDevices } from '../../model/listing.js';
import { humanBytes } from '../../util/units.js';
import { collect } from '../shared.js';
import { addCommonOptions, namingOptions, openRoot, type CommonOptions } from '../options.js';
import { printJson, printProblems, short, table, type Out } from '../render.js';

export function register(program: Command, io: Out): void {
  addCommonOptions(program.command('devices').description("list Docker's device records and what each one is"))
    .option('--metadata <file>', 'pool metadata for the usage columns (default: the loop-lvm file of --root)')
    .option('--image <file>', 'direct-lvm: a disk image holding the LVM thin pool (repeatable)', collect, [])
    .action((opts: CommonOptions & { metadata?: string; image: string[] }) => {
    const root = openRoot(opts);
    const list = attachDeviceUsage(listDevices(root, namingOptions(opts)), root, { ...namingOptions(opts), metadata: opts.metadata, images: opts.image });
    if (opts.json) {
      printJson(io, list);
      return;
    }
    const pooled = list.devices.some((d) => d.inPool !== null);
    io.out(
      table(
        ['DEVICE ID', 'HASH', 'ROLE', 'SIZE', 'TXN', 'DELETED', ...(pooled ? ['MAPPED', 'EXCLUSIVE'] : [])],
        list.devices.map((d) => [
          d.deviceId,
          d.hash === '' ? 'base' : short(d.hash) + (d.hash.endsWith('-init') ? '-init' : ''),
          d.owner,
          d.sizeHuman,
          d.transactionId,
          d.deleted === null ? 'n/a' : d.deleted ? 'yes' : 'no',
          ...(pooled ? (d.usage ? [humanBytes(d.usage.mappedBytes), humanBytes(d.usage.exclusiveBytes)] : ['not in pool', '-']) : []),
        ]),
      ),
    );
    for (const t of list.tmpFiles) io.err(`warning: stale temporary file ${t}`);
    printProblems(io, list.problems);
  });
}
