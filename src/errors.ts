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
  /** Extra machine-readable facts (candidates of an ambiguous ref, the file, ...). */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
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

/** Turns a Node fs error about `path` into a DmiError with one clear line, or rethrows a bug. */
export function fsError(e: unknown, path: string, what = 'read'): DmiError {
  if (e instanceof DmiError) return e;
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ENOENT':
      return new DmiError('NOT_FOUND', `${path}: no such file or directory`, { path });
    case 'EACCES':
    case 'EPERM':
      return new DmiError('PERMISSION', `${path}: permission denied (cannot ${what}; try as root)`, { path });
    case 'ENOTDIR':
      return new DmiError('BAD_INPUT', `${path}: not a directory`, { path });
    case 'EISDIR':
      return new DmiError('BAD_INPUT', `${path}: is a directory, expected a file`, { path });
    case 'ELOOP':
      return new DmiError('BAD_INPUT', `${path}: symbolic link loop or link refused`, { path });
    case 'ENOSPC':
      return new DmiError('IO', `${path}: no space left on device`, { path });
    case 'EIO':
      return new DmiError('IO', `${path}: I/O error`, { path });
    default:
      if (err && typeof err.code === 'string') {
        return new DmiError('IO', `${path}: cannot ${what}: ${err.code}`, { path });
      }
      throw e;
  }
}
