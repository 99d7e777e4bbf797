import type { Command } from 'commander';
import { listDevices } from '../../inspect/listing.js';
import { addCommonOptions, namingOptions, openRoot, type CommonOptions } from '../options.js';
import { printJson, printProblems, short, table, type Out } from '../render.js';

export function register(program: Command, io: Out): void {
  addCommonOptions(program.command('devices').description("list Docker's device records and what each one is")).action((opts: CommonOptions) => {
    const list = listDevices(openRoot(opts), namingOptions(opts));
    if (opts.json) {
      printJson(io, list);
      return;
    }
    io.out(
      table(
        ['DEVICE ID', 'HASH', 'ROLE', 'SIZE', 'TXN', 'DELETED'],
        list.devices.map((d) => [d.deviceId, d.hash === '' ? 'base' : short(d.hash) + (d.hash.endsWith('-init') ? '-init' : ''), d.owner, d.sizeHuman, d.transactionId, d.deleted === null ? 'n/a' : d.deleted ? 'yes' : 'no']),
      ),
    );
    for (const t of list.tmpFiles) io.err(`warning: stale temporary file ${t}`);
    printProblems(io, list.problems);
  });
}
