/**
 * Operations that change the system are plans: ordered steps, each an argv list with the step that undoes it.
 * Plans are data (tests assert on them, `--dry-run` prints them); one executor runs them and, when a step
 * fails, runs the undo of every step that already ran, in reverse.
 */
import { DmiError } from '../errors.js';

export interface Step {
  /** What the step is for, in words. */
  what: string;
  argv: string[];
  /** The command that reverses this step, or null when nothing needs undoing. */
  undo: string[] | null;
  /** Failure messages (stderr substrings) that mean "already done": the step counts as a success. */
  okIf?: string[];
}

export interface Plan {
  steps: Step[];
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one argv; the default uses execa, tests may pass their own. */
export type Runner = (argv: string[]) => Promise<RunResult>;

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** POSIX shell quoting for printing plans. */
export function shellQuote(arg: string): string {
  if (arg !== '' && SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellLine(argv: string[]): string {
  return argv.map(shellQuote).join(' ');
}

/** The plan as shell lines, with its undo block as comments, for `--dry-run`. */
export function renderPlan(plan: Plan): string {
  const lines = plan.steps.map((s) => `${shellLine(s.argv)}    # ${s.what}`);
  const undo = plan.steps
    .filter((s) => s.undo)
    .reverse()
    .map((s) => `#   ${shellLine(s.undo!)}`);
  return [...lines, ...(undo.length ? ['# if a step fails, dminspect undoes the ones that ran:', ...undo] : [])].join(
    '\n',
  );
}

export async function execaRunner(argv: string[]): Promise<RunResult> {
  const { execa } = await import('execa');
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, stdin: 'ignore', env: { LC_ALL: 'C' } });
  return { code: r.exitCode ?? 1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

export interface Executed {
  step: Step;
  result: RunResult;
}

/**
 * Runs the plan. On a failing step, undoes the steps that ran (reverse order; undo failures are reported but do
 * not stop the unwinding) and throws a DmiError naming the step and what the undo left behind.
 */
export async function executePlan(
  plan: Plan,
  run: Runner = execaRunner,
  log: (s: string) => void = () => {},
): Promise<Executed[]> {
  const done: Executed[] = [];
  for (const step of plan.steps) {
    log(`+ ${shellLine(step.argv)}`);
    let result: RunResult;
    try {
      result = await run(step.argv);
    } catch (e) {
      result = { code: 127, stdout: '', stderr: (e as Error).message };
    }
    const tolerated =
      result.code !== 0 && step.okIf?.some((s) => result.stderr.includes(s) || result.stdout.includes(s));
    if (result.code !== 0 && !tolerated) {
      const leftovers = await undoSteps(done, run, log);
      const why = firstUsefulLine(result.stderr || result.stdout) ?? `exit ${result.code}`;
      const left = leftovers.length
        ? `; could not undo: ${leftovers.map(shellLine).join('; ')}`
        : '; everything before it was undone';
      const failure: StepFailure = {
        step: step.argv,
        exitCode: result.code,
        stderr: result.stderr,
        stdout: result.stdout,
        leftovers,
      };
      throw new DmiError(
        /ermission denied|Operation not permitted/.test(why) ? 'PERMISSION' : 'CONFLICT',
        `${step.what} failed: ${shellLine(step.argv)}: ${why}${left}`,
        { ...failure },
      );
    }
    done.push({ step, result });
  }
  return done;
}

/** What a failed step left in the DmiError's details: the command, its exit status and output, and what was not undone. */
export interface StepFailure {
  step: string[];
  exitCode: number;
  stderr: string;
  stdout: string;
  leftovers: string[][];
}

/** The failed step behind an error thrown by executePlan, or null for any other error. */
export function stepFailure(e: unknown): StepFailure | null {
  if (!(e instanceof DmiError) || !e.details) return null;
  const d = e.details as Partial<StepFailure>;
  return Array.isArray(d.step) && typeof d.exitCode === 'number' && typeof d.stderr === 'string'
    ? (d as StepFailure)
    : null;
}

/** The line of a tool's error output that says what went wrong (not mount's "dmesg(1) may have more" nor "Command failed."). */
export function firstUsefulLine(text: string): string | null {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^dmesg\(1\) may have more information/.test(l) && l !== 'Command failed.');
  return lines[0] ?? null;
}

/** Runs the undo of each executed step in reverse; returns the undo commands that failed. */
export async function undoSteps(
  done: Executed[],
  run: Runner,
  log: (s: string) => void = () => {},
): Promise<string[][]> {
  const failed: string[][] = [];
  for (const { step } of [...done].reverse()) {
    if (!step.undo) continue;
    log(`- ${shellLine(step.undo)}`);
    try {
      const r = await run(step.undo);
      if (r.code !== 0) failed.push(step.undo);
    } catch {
      failed.push(step.undo);
    }
  }
  return failed;
}
