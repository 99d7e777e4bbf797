/** The dminspect command line: parse, run one use case, render, map errors to exit statuses. */
import { Command, CommanderError } from 'commander';
import { DmiError, EXIT_CODES, isDmiError } from '../errors.js';
import * as containerCmd from './commands/container.js';
import * as containersCmd from './commands/containers.js';
import * as deletedCmd from './commands/deleted.js';
import * as devicesCmd from './commands/devices.js';
import * as exportCmd from './commands/export.js';
import * as installTimerCmd from './commands/install-timer.js';
import * as liveCmd from './commands/live.js';
import * as lvmCmd from './commands/lvm.js';
import * as poolCmd from './commands/pool.js';
import { stdio, type Out } from './render.js';
import { versionText } from '../util/build-info.js';

export const VERSION = '0.1.0';

export function buildProgram(io: Out = stdio): Command {
  const program = new Command('dminspect')
    .description("Inspect Docker's devicemapper storage and look inside a container's disk without changing it")
    .version(versionText(VERSION), '-V, --version', 'print the version, the runtime and the build')
    .enablePositionalOptions() // --version after a command is that command's (export --deleted --version V)
    .showHelpAfterError(false)
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride();
  for (const cmd of [
    containerCmd,
    containersCmd,
    devicesCmd,
    poolCmd,
    exportCmd,
    liveCmd,
    lvmCmd,
    installTimerCmd,
    deletedCmd,
  ])
    cmd.register(program, io);
  for (const c of program.commands)
    c.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  return program;
}

/** Runs the CLI and returns the exit status; never throws for user errors. */
export async function main(argv: string[], io: Out = stdio): Promise<number> {
  const program = buildProgram(io);
  const debug = argv.includes('--debug');
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')
        return 0;
      return EXIT_CODES.USAGE; // commander already printed the one-line message
    }
    const err = isDmiError(e) ? e : null;
    if (err) {
      io.err(`dminspect: ${err.message}`);
      if (json)
        io.out(
          JSON.stringify({
            error: { code: err.code, exitCode: err.exitCode, message: err.message, ...(err.details ?? {}) },
          }),
        );
      if (debug && err.stack) io.err(err.stack);
      return err.exitCode;
    }
    const msg = e instanceof Error ? e.message : String(e);
    io.err(`dminspect: internal error: ${msg.split('\n')[0]} (run with --debug for the stack)`);
    if (debug && e instanceof Error && e.stack) io.err(e.stack);
    return 1;
  }
}

export { DmiError };
