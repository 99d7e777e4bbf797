/** Where the CLI writes: an `Out` is stdout and stderr, a line each; `stdio` is the process's own. */
export interface Out {
  out: (s: string) => void;
  err: (s: string) => void;
}

export const stdio: Out = {
  out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
  err: (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
};
