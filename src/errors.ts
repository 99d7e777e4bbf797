/**
 * Errors are values with a code and a one-line message. The CLI prints the message and exits with the
 * status of the code; `--debug` shows the stack. Every layer throws `DmiError` for anything the user
 * can cause (bad input, missing files, corrupt evidence); anything else is a bug.
 */
export type ErrorCode =
  | 'USAGE' // bad flags or arguments
  | 'NOT_FOUND' // the reference names nothing
  | 'AMBIGUOUS' // the reference names more than one thing
  | 'BAD_INPUT' // an evidence file is corrupt, truncated or hostile
  | 'NOT_DOCKER_ROOT' // the root is not a Docker root with devicemapper data
  | 'PERMISSION' // permission denied, or root privileges needed
  | 'UNSUPPORTED' // the host cannot do it (no device-mapper, no daemon, ...)
  | 'CONFLICT' // the target exists, is busy, or the state forbids the operation
  | 'IO'; // an I/O error writing output (disk full, ...)

/** Documented exit status of each error code (README "Exit status"). */
export const EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  USAGE: 2,
  NOT_FOUND: 3,
  AMBIGUOUS: 4,
  BAD_INPUT: 5,
  NOT_DOCKER_ROOT: 6,
  PERMISSION: 7,
  UNSUPPORTED: 8,
  CONFLICT: 9,
  IO: 10,
};

export class DmiError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable facts (candidates of an ambiguous ref, the file, a failed command's exit status and stderr, ...). */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'DmiError';
    this.code = code;
    this.details = details;
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}

export function isDmiError(e: unknown): e is DmiError {
  return e instanceof DmiError;
}

/** The one errno table: what each system error means to a user, and its error code. */
const ERRNO: Readonly<Record<string, readonly [ErrorCode, string]>> = {
  ENOENT: ['NOT_FOUND', 'no such file or directory'],
  EACCES: ['PERMISSION', 'permission denied'],
  EPERM: ['PERMISSION', 'permission denied'],
  EROFS: ['PERMISSION', 'read-only file system'],
  ENOTDIR: ['BAD_INPUT', 'not a directory'],
  EISDIR: ['BAD_INPUT', 'is a directory, expected a file'],
  ELOOP: ['BAD_INPUT', 'symbolic link loop or link refused'],
  ENOSPC: ['IO', 'no space left on device'],
  EDQUOT: ['IO', 'disk quota exceeded'],
  EIO: ['IO', 'I/O error'],
  EEXIST: ['CONFLICT', 'exists'],
};

/** The errno of a Node system error, or null for anything else (a bug). */
export function errnoOf(e: unknown): string | null {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : null;
}

/** What an errno means, in words (`ENOSPC` → `no space left on device`); unknown ones as themselves. */
export function errnoText(errno: string): string {
  return ERRNO[errno]?.[1] ?? errno;
}

/**
 * Turns a Node fs error about `path` into a DmiError with one clear line, keeping the original as `cause`;
 * a DmiError passes through; anything without an errno is a bug and is rethrown. `what` is the verb for
 * messages (`read`, `create`, `write`).
 */
export function fsError(e: unknown, path: string, what = 'read'): DmiError {
  if (e instanceof DmiError) return e;
  const errno = errnoOf(e);
  if (errno === null) throw e;
  const known = ERRNO[errno];
  const details = { path, errno };
  if (!known) return new DmiError('IO', `${path}: cannot ${what}: ${errno}`, details, { cause: e });
  const [code, text] = known;
  const line =
    errno === 'EACCES' || errno === 'EPERM'
      ? `${text} (cannot ${what}; try as root)`
      : code === 'PERMISSION'
        ? `${text} (cannot ${what})`
        : text;
  return new DmiError(code, `${path}: ${line}`, details, { cause: e });
}

/** A failed write of `what` (a named file) to `target`, as `target: cannot write WHAT: reason`. */
export function writeError(e: unknown, target: string, what: string): DmiError {
  if (e instanceof DmiError) return e;
  const errno = errnoOf(e);
  if (errno === null) throw e;
  const known = ERRNO[errno];
  const code: ErrorCode = known?.[0] === 'PERMISSION' ? 'PERMISSION' : 'IO';
  const text = errno === 'ENOENT' ? 'no such directory' : errnoText(errno);
  return new DmiError(code, `${target}: cannot write ${what}: ${text}`, { path: target, errno }, { cause: e });
}
