/**
 * Reads 4 KiB metadata blocks from a file descriptor opened read-only: a regular file, a block
 * device, or a byte range inside a disk image (`offset` + `length`). Reads are done in chunks
 * (`chunkBlocks` blocks at a time) kept in a bounded LRU cache, so a tree walk that touches nearby
 * blocks costs few system calls and memory stays bounded whatever the metadata size.
 */
import * as fs from 'node:fs';
import { DmiError, fsError } from '../errors.js';
import { BLOCK_SIZE } from './checksum.js';

export interface BlockSourceOptions {
  /** Byte offset of the metadata inside the file or device (default 0). */
  offset?: number;
  /** Byte length of the metadata (default: from the offset to the end of the file or device). */
  length?: number;
  /** Blocks per read (default 64 = 256 KiB). */
  chunkBlocks?: number;
  /** Upper bound of the chunk cache in bytes (default 8 MiB). */
  cacheBytes?: number;
}

export interface BlockSourceStats {
  /** read(2) calls made. */
  reads: number;
  /** Bytes read from the file. */
  bytesRead: number;
}

export class BlockSource {
  readonly path: string;
  /** Whole 4 KiB blocks available. */
  readonly nrBlocks: number;
  readonly stats: BlockSourceStats = { reads: 0, bytesRead: 0 };
  private fd: number | null;
  private readonly base: number;
  private readonly chunkBlocks: number;
  private readonly maxChunks: number;
  private readonly chunks = new Map<number, Buffer>();

  private constructor(path: string, fd: number, base: number, nrBlocks: number, chunkBlocks: number, maxChunks: number) {
    this.path = path;
    this.fd = fd;
    this.base = base;
    this.nrBlocks = nrBlocks;
    this.chunkBlocks = chunkBlocks;
    this.maxChunks = maxChunks;
  }

  /** Opens `path` read-only. Throws NOT_FOUND / PERMISSION / BAD_INPUT (range outside the file). */
  static open(path: string, opts: BlockSourceOptions = {}): BlockSource {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw fsError(e, path, 'open');
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) throw new DmiError('BAD_INPUT', `${path}: is a directory, expected a metadata file or device`);
      const size = st.isBlockDevice() || st.isCharacterDevice() ? probeSize(fd) : st.size;
      const base = opts.offset ?? 0;
      if (!Number.isSafeInteger(base) || base < 0) throw new DmiError('USAGE', `bad metadata offset ${base}`);
      if (base > size) throw new DmiError('BAD_INPUT', `${path}: offset ${base} is past the end (${size} bytes)`);
      let length = size - base;
      if (opts.length !== undefined) {
        if (!Number.isSafeInteger(opts.length) || opts.length < 0) throw new DmiError('USAGE', `bad metadata length ${opts.length}`);
        if (opts.length > length) {
          throw new DmiError('BAD_INPUT', `${path}: range ${base}+${opts.length} is past the end (${size} bytes)`);
        }
        length = opts.length;
      }
      const chunkBlocks = Math.max(1, Math.floor(opts.chunkBlocks ?? 64));
      const maxChunks = Math.max(2, Math.floor((opts.cacheBytes ?? 8 * 1024 * 1024) / (chunkBlocks * BLOCK_SIZE)));
      return new BlockSource(path, fd, base, Math.floor(length / BLOCK_SIZE), chunkBlocks, maxChunks);
    } catch (e) {
      fs.closeSync(fd);
      throw fsError(e, path);
    }
  }

  /**
   * Block `n` as a 4096-byte Buffer: a view into a cached chunk, **valid until a later read evicts
   * that chunk** (chunk buffers are reused to keep memory flat). Copy it (`Buffer.from(b)`) to keep it
   * across other reads; do not modify it. Throws BAD_INPUT if `n` is past the end, naming `what`.
   */
  read(n: number, what?: string): Buffer {
    if (!(n >= 0 && n < this.nrBlocks) || !Number.isInteger(n)) {
      throw new DmiError(
        'BAD_INPUT',
        `${what ? `${what}: ` : ''}block ${n} is past the end of the metadata (${this.nrBlocks} blocks of 4 KiB in ${this.path})`,
        { block: n },
      );
    }
    const c = Math.floor(n / this.chunkBlocks);
    let chunk = this.chunks.get(c);
    if (chunk) {
      // LRU: move to the most recent end.
      this.chunks.delete(c);
      this.chunks.set(c, chunk);
    } else {
      chunk = this.load(c);
    }
    const off = (n - c * this.chunkBlocks) * BLOCK_SIZE;
    return chunk.subarray(off, off + BLOCK_SIZE);
  }

  private load(c: number): Buffer {
    if (this.fd === null) throw new DmiError('IO', `${this.path}: metadata source is closed`);
    const first = c * this.chunkBlocks;
    const count = Math.min(this.chunkBlocks, this.nrBlocks - first);
    const bytes = count * BLOCK_SIZE;
    let buf: Buffer;
    if (this.chunks.size >= this.maxChunks) {
      // Evict the least recently used chunk and reuse its memory.
      const oldest = this.chunks.keys().next().value as number;
      buf = this.chunks.get(oldest)!;
      this.chunks.delete(oldest);
    } else {
      // Own ArrayBuffer per chunk: blocks are 4-byte aligned for Uint32Array views.
      buf = Buffer.from(new ArrayBuffer(this.chunkBlocks * BLOCK_SIZE));
    }
    let done = 0;
    while (done < bytes) {
      let got: number;
      try {
        got = fs.readSync(this.fd, buf, done, bytes - done, this.base + first * BLOCK_SIZE + done);
      } catch (e) {
        throw fsError(e, this.path);
      }
      this.stats.reads++;
      if (got === 0) {
        throw new DmiError('BAD_INPUT', `${this.path}: truncated while reading block ${first + Math.floor(done / BLOCK_SIZE)}`);
      }
      done += got;
    }
    this.stats.bytesRead += bytes;
    this.chunks.set(c, buf);
    return buf;
  }

  /** Drops cached chunks (memory) without closing. */
  dropCache(): void {
    this.chunks.clear();
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
    this.chunks.clear();
  }
}

/** Size of a device opened as `fd` (fstat says 0): the largest offset a 1-byte read still succeeds at. */
function probeSize(fd: number): number {
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
