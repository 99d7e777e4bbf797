import type { Command } from 'commander';
import { listContainers } from '../../model/container-list.js';
import { addCommonOptions, openRoot, type CommonOptions } from '../options.js';
import { printJson, printProblems, short, table, type Out } from '../render.js';

export function register(program: Command, io: Out): void {
  addCommonOptions(
    program.command('containers').description('list containers with their thin devices, oldest first'),
  ).action((opts: CommonOptions) => {
    const list = listContainers(openRoot(opts));
    if (opts.json) {
      printJson(io, list);
      return;
    }
    io.out(
      table(
        ['CONTAINER', 'NAME', 'IMAGE', 'STATE', 'DEVICE ID', 'SIZE', 'DEVICE HASH'],
        list.containers.map((c) => [
          short(c.id),
          c.name,
          c.image,
          c.state + (c.deleted ? ' (record deleted)' : ''),
          c.deviceId,
          c.sizeHuman,
          short(c.mountId),
        ]),
      ),
    );
    printProblems(io, list.problems);
  });
}
