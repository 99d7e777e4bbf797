import * as path from 'node:path';
import type { Command } from 'commander';
import { DmHost } from '../../dm/host.js';
import { DEFAULT_STATE_DIR } from '../../forensics/state.js';
import { withRootPool } from '../../pool-source/live.js';
import { attachDeviceUsage, listDevices, LISTING_MODULE } from '../../model/listing.js';
import { humanBytes } from '../../util/units.js';
import { collect } from '../shared.js';
import { addCommonOptions, namingOptions, openRoot, type CommonOptions } from '../options.js';
import { printJson, printProblems, short, table, type Out } from '../render.js';

export function register(program: Command, io: Out): void {
  addCommonOptions(program.command('devices').description("list Docker's device records and what each one is"))
    .option('--metadata <file>', 'pool metadata for the usage columns (default: the loop-lvm file of --root)')
    .option('--image <file>', 'direct-lvm: a disk image holding the LVM thin pool (repeatable)', collect, [])
    .option('--no-live', 'read the pool files as they lie on disk even when the kernel has the pool active')
    .option('--state-dir <dir>', 'where dminspect records its metadata-snapshot hold (live pool)', DEFAULT_STATE_DIR)
    .action(async (opts: CommonOptions & { metadata?: string; image: string[]; live: boolean; stateDir: string }) => {
      const root = openRoot(opts);
      const choice = {
        ...namingOptions(opts),
        metadata: opts.metadata,
        images: opts.image,
        live: opts.live,
        stateDir: path.resolve(opts.stateDir),
      };
      // A live pool is read through a held metadata snapshot (pool-source/live.ts; the read in a worker thread),
      // else the files.
      const base = listDevices(root, namingOptions(opts));
      const poolOpts = { ...namingOptions(opts), metadata: opts.metadata, images: opts.image };
      const list = await withRootPool(
        new DmHost(),
        root.root,
        choice,
        (loc, held) =>
          attachDeviceUsage(base, root, { ...poolOpts, ...(loc ? { location: loc, metadataSnap: held } : {}) }),
        (loc) => ({
          module: LISTING_MODULE,
          fn: 'heldDeviceUsage',
          args: [base, root.root, { ...poolOpts, location: loc }],
        }),
      );
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
