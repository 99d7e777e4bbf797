/** Where the CLI writes: an `Out` is stdout and stderr, a line each; `stdio` is the process's own. */
export interface Out {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** Writes `s` and the line end it lacks, without concatenating them (a 5 MB JSON document would be copied again). */
function line(stream: NodeJS.WriteStream, s: string): void {
  stream.write(s);
  if (!s.endsWith('\n')) stream.write('\n');
}

export const stdio: Out = {
  out: (s) => line(process.stdout, s),
  err: (s) => line(process.stderr, s),
};
