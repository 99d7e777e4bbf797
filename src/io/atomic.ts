/** Atomic file writes: a reader sees the old file or the new one, never a part. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeError } from '../errors.js';

/** Writes `dir/name` (mode 0644) atomically, as writeTextfileAtomic; `what` names it in errors. */
export function writeFileAtomic(dir: string, name: string, content: string, what: string): string {
  const target = path.join(dir, name);
  const tmp = path.join(dir, `.${name}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`);
  let fd: number | null = null;
  let created = false;
  try {
    fd = fs.openSync(
      tmp,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
      0o644,
    );
    created = true;
    fs.writeFileSync(fd, content);
    fs.fchmodSync(fd, 0o644); // the umask may have cut it: node_exporter runs as another user
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, target);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    if (created) fs.rmSync(tmp, { force: true });
    throw writeError(e, created ? target : dir, what);
  }
  removeStaleTemporaries(dir, name);
  try {
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // the rename is done; a directory that cannot be fsynced (some network file systems) is not an error
  }
  return target;
}

/** Temporaries of runs killed mid-write (older than an hour: a live run's is seconds old) are removed. */
function removeStaleTemporaries(dir: string, name: string): void {
  const cutoff = Date.now() - 3600_000;
  try {
    for (const f of fs.readdirSync(dir)) {
      if (!f.startsWith(`.${name}.`) || !f.endsWith('.tmp')) continue;
      const p = path.join(dir, f);
      const st = fs.lstatSync(p);
      if (st.isFile() && st.mtimeMs < cutoff) fs.rmSync(p, { force: true });
    }
  } catch {
    // best effort: the new file is in place
  }
}
