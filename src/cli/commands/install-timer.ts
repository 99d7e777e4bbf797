/** `dminspect install-timer`: parse, call audit/timer.ts, render. */
import type { Command } from 'commander';
import { DEFAULT_ROOT } from '../../docker/root.js';
import { shellLine } from '../../dm/plan.js';
import {
  DEFAULT_TEXTFILE_DIR,
  DEFAULT_UNIT_DIR,
  ENABLE_COMMANDS,
  installTimer,
  type InstallTimerOptions,
} from '../../audit/timer.js';
import { printJson, type Out } from '../render.js';

export function register(program: Command, io: Out): void {
  program
    .command('install-timer')
    .description("write a systemd service + timer that run 'dminspect pool --textfile' every minute for node_exporter")
    .option('--textfile-dir <dir>', "node_exporter's --collector.textfile.directory", DEFAULT_TEXTFILE_DIR)
    .option('--root <dir>', 'Docker root directory the timer audits', DEFAULT_ROOT)
    .option('--pool <name>', 'thin-pool device-mapper name, passed on to dminspect pool')
    .option('--unit-dir <dir>', 'where to write the unit files', DEFAULT_UNIT_DIR)
    .option(
      '--exec <path>',
      "absolute path of the dminspect executable for ExecStart (default: this binary, or this node and this package's bin/dminspect.js)",
    )
    .option('--dry-run', 'print the unit files and the commands; write nothing')
    .option('--enable', `also run: ${ENABLE_COMMANDS.map(shellLine).join(' && ')}`)
    .option('--force', 'replace unit files that exist with other content')
    .option('--json', 'print JSON')
    .option('--debug', 'show stack traces on errors')
    .action(async (opts: InstallTimerOptions) => {
      const r = await installTimer(opts);
      for (const w of r.warnings) io.err(`warning: ${w}`);
      if (opts.json) return printJson(io, r);
      const out: string[] = [];
      if (r.dryRun) {
        for (const u of r.units)
          out.push(
            `# ${u.path} (${u.action === 'unchanged' ? 'unchanged' : u.action === 'replace' ? 'would replace' : 'would create'})`,
            u.content,
          );
        out.push('# then run:', r.commands.join(' && '));
      } else {
        for (const u of r.units)
          out.push(
            `${u.action === 'unchanged' ? 'unchanged' : u.action === 'replace' ? 'replaced' : 'wrote'}: ${u.path}`,
          );
        if (r.enabled) out.push(`ran:   ${r.commands.join(' && ')}`);
        else out.push(`to start it: ${r.commands.join(' && ')}`);
      }
      io.out(out.join('\n'));
    });
}
