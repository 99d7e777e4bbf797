/** Where the CLI writes: an `Out` is stdout and stderr, a line each; `stdio` is the process's own. */
import * as fs from 'node:fs';

export interface Out {
  out: (s: string) => void;
  err: (s: string) => void;
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes all of `s` to file descriptor `fd`, synchronously, as process.stdout does for files, pipes and terminals on
 * Linux, without creating process.stdout: that stream (with the stream modules it loads, and net's for a pipe) costs
 * about 14M instructions at every start, 17% of `node -e 0` (issue 15). The string goes out as it is (a 5 MB JSON
 * document is not copied into a buffer first) unless a write takes only part of it; a descriptor someone else left
 * non-blocking (EAGAIN) is waited on a millisecond at a time.
 */
export function writeAll(fd: number, s: string): void {
  let rest: Buffer | null = null;
  let done = 0;
  for (;;) {
    try {
      if (rest === null) {
        done = fs.writeSync(fd, s);
        if (done === Buffer.byteLength(s)) return;
        rest = Buffer.from(s, 'utf8');
      } else {
        done += fs.writeSync(fd, rest, done);
        if (done === rest.length) return;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

/** Writes `s` and the line end it lacks, without concatenating them (a 5 MB JSON document would be copied again). */
function line(fd: number, s: string): void {
  writeAll(fd, s);
  if (!s.endsWith('\n')) writeAll(fd, '\n');
}

export const stdio: Out = {
  out: (s) => line(1, s),
  err: (s) => line(2, s),
};
