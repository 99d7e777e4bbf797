/** `dminspect deleted`: parse, call recover/deleted.ts, render (cli/recover.ts). */
import type { Command } from 'commander';
import * as path from 'node:path';
import { DmHost } from '../../dm/host.js';
import { DEFAULT_STATE_DIR } from '../../forensics/state.js';
import { listDeletedLive } from '../../recover/deleted.js';
import { addCommonOptions, namingOptions, type CommonOptions } from '../options.js';
import { printJson, type Out } from '../render.js';
import { openOptionalRoot, renderDeleted } from '../recover.js';
import { collect } from '../shared.js';

interface DeletedCliOptions extends CommonOptions {
  metadata?: string;
  data?: string;
  image: string[];
  dataCheck: boolean;
  metadataSnap?: boolean;
  live: boolean;
  stateDir: string;
}

export function register(program: Command, io: Out): void {
  addCommonOptions(
    program
      .command('deleted')
      .description(
        'list thin devices the pool deleted that its stale (free, not yet overwritten) metadata still describes, with every recoverable version and where its data blocks stand',
      ),
  )
    .option('--metadata <file>', 'pool metadata file or device (default: <root>/devicemapper/devicemapper/metadata)')
    .option(
      '--data <file>',
      'pool data file or device (default: <root>/devicemapper/devicemapper/data); read to tell discarded (zero) blocks',
    )
    .option(
      '--image <file>',
      'direct-lvm: a disk image (or block device) holding the LVM thin pool; repeat for a VG on several disks',
      collect,
      [],
    )
    .option('--no-data-check', 'do not read free data blocks (no discarded count)')
    .option(
      '--metadata-snap',
      'read the live trees from the held metadata snapshot (on a live pool: the one someone else holds, without reserving or releasing; dminspect otherwise holds its own)',
    )
    .option('--no-live', 'read the pool files as they lie on disk even when the kernel has the pool active')
    .option('--state-dir <dir>', 'where dminspect records its metadata-snapshot hold (live pool)', DEFAULT_STATE_DIR)
    .action(async (opts: DeletedCliOptions, cmd: Command) => {
      const root = openOptionalRoot(opts, cmd);
      const r = await listDeletedLive(
        root,
        {
          ...namingOptions(opts),
          metadata: opts.metadata,
          data: opts.data,
          images: opts.image,
          checkData: opts.dataCheck,
          metadataSnap: opts.metadataSnap,
          live: opts.live,
          stateDir: path.resolve(opts.stateDir),
          log: opts.debug ? (l) => io.err(l) : undefined,
        },
        new DmHost(),
      );
      if (opts.json) printJson(io, r);
      else io.out(renderDeleted(r));
    });
}
