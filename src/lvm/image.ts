/** A disk image (or block device) opened read-only, read at byte offsets. */
import * as fs from 'node:fs';
import { DmiError, fsError } from '../errors.js';
import { probeSize } from '../io/size.js';

export class ImageFile {
  readonly path: string;
  readonly size: number;
  private fd: number | null;

  private constructor(path: string, fd: number, size: number) {
    this.path = path;
    this.fd = fd;
    this.size = size;
  }

  static open(path: string): ImageFile {
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDONLY);
    } catch (e) {
      throw fsError(e, path, 'open');
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) throw new DmiError('BAD_INPUT', `${path}: is a directory, expected a disk image or device`);
      const size = st.isBlockDevice() || st.isCharacterDevice() ? probeSize(fd) : st.size;
      return new ImageFile(path, fd, size);
    } catch (e) {
      fs.closeSync(fd);
      throw fsError(e, path);
    }
  }

  /** `len` bytes at `offset`; BAD_INPUT naming `what` when the image ends first (a truncated acquisition). */
  read(offset: number, len: number, what: string): Buffer {
    if (this.fd === null) throw new DmiError('IO', `${this.path}: image is closed`);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(len) || len < 0) {
      throw new DmiError('BAD_INPUT', `${this.path}: ${what}: bad range ${offset}+${len}`);
    }
    if (offset + len > this.size) {
      throw new DmiError(
        'BAD_INPUT',
        `${this.path}: ${what} at byte ${offset} (+${len}) is past the end of the image (${this.size} bytes): truncated image?`,
        { path: this.path },
      );
    }
    const buf = Buffer.alloc(len);
    let done = 0;
    while (done < len) {
      let got: number;
      try {
        got = fs.readSync(this.fd, buf, done, len - done, offset + done);
      } catch (e) {
        throw fsError(e, this.path);
      }
      if (got === 0)
        throw new DmiError(
          'BAD_INPUT',
          `${this.path}: ${what}: the image ended at byte ${offset + done} while reading`,
          { path: this.path },
        );
      done += got;
    }
    return buf;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}
