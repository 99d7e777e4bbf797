import type { Command } from 'commander';
import { attachDeviceUsage, listDevices, LISTING_MODULE } from '../../model/listing.js';
import { humanBytes } from '../../util/units.js';
import { addPoolUsageOptions, withPoolUsage, type PoolUsageOptions } from '../shared.js';
import { addCommonOptions, namingOptions, openRoot } from '../options.js';
import { printJson, printProblems, short, table, type Out } from '../render.js';

export function register(program: Command, io: Out): void {
  addPoolUsageOptions(
    addCommonOptions(program.command('devices').description("list Docker's device records and what each one is")),
    'columns',
  ).action(async (opts: PoolUsageOptions) => {
    const root = openRoot(opts);
    // A live pool is read through a held metadata snapshot (the read in a worker thread), else the files.
    const base = listDevices(root, namingOptions(opts));
    const list = await withPoolUsage(root, opts, base, async () => ({
      attach: attachDeviceUsage,
      task: { module: LISTING_MODULE, fn: 'heldDeviceUsage' },
    }));
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
          ...(pooled
            ? d.usage
              ? [humanBytes(d.usage.mappedBytes), humanBytes(d.usage.exclusiveBytes)]
              : ['not in pool', '-']
            : []),
        ]),
      ),
    );
    for (const t of list.tmpFiles) io.err(`warning: stale temporary file ${t}`);
    printProblems(io, list.problems);
  });
}
