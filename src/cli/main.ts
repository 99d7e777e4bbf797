/** The dminspect command line: parse, run one use case, render, map errors to exit statuses. */
import { Command, CommanderError } from 'commander';
import { DmiError, EXIT_CODES, isDmiError } from '../errors.js';
import { stdio, type Out } from './output.js';
import { VERSION, versionText } from '../util/build-info.js';

export { VERSION };

type CommandModule = { register(program: Command, io: Out): void };

/**
 * Each command's module, loaded only when that command runs (issue 15: a run pays for what it uses, so
 * `--version` loads no command and `containers` loads neither the live pool, the daemon client nor the plans).
 * Several command names share a module (live.ts registers snapshot, mount, release and snapshots).
 */
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  container: () => import('./commands/container.js'),
  containers: () => import('./commands/containers.js'),
  devices: () => import('./commands/devices.js'),
  pool: () => import('./commands/pool.js'),
  export: () => import('./commands/export.js'),
  snapshot: () => import('./commands/live.js'),
  mount: () => import('./commands/live.js'),
  release: () => import('./commands/live.js'),
  snapshots: () => import('./commands/live.js'),
  lvm: () => import('./commands/lvm.js'),
  'install-timer': () => import('./commands/install-timer.js'),
  deleted: () => import('./commands/deleted.js'),
};

/**
 * The commands that read a whole pool or a whole Docker root, where bin/dminspect.js keeps V8's young generation at
 * its first size (fewer page faults; see there). Named as the user types them, as COMMANDS above.
 */
export const BULK_COMMANDS: ReadonlySet<string> = new Set([
  'containers',
  'devices',
  'pool',
  'deleted',
  'export',
  'lvm',
]);

/** The command modules a run needs: the named command's, or all of them (help, an unknown name, no name). */
function modulesFor(argv: readonly string[] | undefined): Array<() => Promise<CommandModule>> {
  const name = argv?.slice(2).find((a) => !a.startsWith('-'));
  const first = argv?.[2];
  if (first === '-V' || first === '--version') return [];
  if (name !== undefined && name in COMMANDS && name === first) return [COMMANDS[name]!];
  return [...new Set(Object.values(COMMANDS))];
}

/**
 * The program with the commands `argv` needs registered (all of them without `argv`), in the order the help
 * lists them.
 */
export async function buildProgram(io: Out = stdio, argv?: readonly string[]): Promise<Command> {
  const program = new Command('dminspect')
    .description("Inspect Docker's devicemapper storage and look inside a container's disk without changing it")
    // commander's .version() takes the text up front; this prints it only when asked (it loads the CRC addon)
    .option('-V, --version', 'print the version, the runtime and the build')
    .on('option:version', () => {
      io.out(versionText(VERSION));
      throw new CommanderError(0, 'commander.version', VERSION);
    })
    .enablePositionalOptions() // --version after a command is that command's (export --deleted --version V)
    .showHelpAfterError(false)
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride();
  const wanted = modulesFor(argv);
  // one command that prints text: its tables (a JSON run, --help and --version never load cli-table3)
  const tables =
    wanted.length === 1 && !argv?.includes('--json') ? import('./render.js').then((r) => r.loadTables()) : null;
  const [modules] = await Promise.all([Promise.all(wanted.map((load) => load())), tables]);
  for (const m of new Set(modules)) m.register(program, io);
  for (const c of program.commands)
    c.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  return program;
}

/** Runs the CLI and returns the exit status; never throws for user errors. */
export async function main(argv: string[], io: Out = stdio): Promise<number> {
  const debug = argv.includes('--debug');
  const json = argv.includes('--json');
  try {
    const program = await buildProgram(io, argv);
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    // the reader of stdout went away (`dminspect devices --json | head`): stop quietly, as a tool killed by SIGPIPE
    // would (128 + 13); the finally blocks on the way out have run (a held snapshot is released)
    if ((e as NodeJS.ErrnoException | null)?.code === 'EPIPE') return 141;
    if (e instanceof CommanderError) {
      const code = e.code;
      if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return 0;
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

/**
 * The single-file binary's entry names itself (bin/dminspect.js under Bun), so that held reads of a live pool run in
 * a worker thread started on it (pool-source/held-read.ts), as they do under Node.
 */
export async function setHeldWorkerEntry(entry: string): Promise<void> {
  (await import('../pool-source/held-read.js')).setHeldWorkerEntry(entry);
}

/** In a worker thread started on the binary's entry: serve held reads (cli/held-worker.ts). */
export async function serveHeldReads(): Promise<void> {
  (await import('./held-worker.js')).serve();
}
