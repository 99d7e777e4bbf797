/** The size of an open file or device, for devices whose fstat says 0. */
import * as fs from 'node:fs';

/** Size of a device opened as `fd` (fstat says 0): the largest offset a 1-byte read still succeeds at. */
export function probeSize(fd: number): number {
  const one = Buffer.alloc(1);
  const readable = (pos: number): boolean => {
    try {
      return fs.readSync(fd, one, 0, 1, pos) === 1;
    } catch {
      return false;
    }
  };
  if (!readable(0)) return 0;
  let lo = 0; // readable
  let hi = 1;
  while (hi < 2 ** 52 && readable(hi)) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (readable(mid)) lo = mid;
    else hi = mid;
  }
  return lo + 1;
}
