/**
 * Reads 4 KiB metadata blocks from files opened read-only: a regular file, a block device, a byte range
 * inside a disk image (`offset` + `length`), or a logical byte space made of several (offset, length)
 * extents of one or more files (`extents`: an LVM logical volume inside disk images). Reads are done in
 * chunks (`chunkBlocks` blocks at a time) kept in a bounded LRU cache, so a tree walk that touches nearby
 * blocks costs few system calls and memory stays bounded whatever the metadata size. Sequential reading (a miss on
 * the chunk after the last one read, or on the block right after the read-ahead) reads ahead `streamBlocks` blocks in
 * one call, into a buffer of its own; reading scattered blocks (a tree's leaves, spread through the file) reads a
 * small chunk each, and the little memory it fills stays warm (every fresh page is a page fault, which costs about
 * 25 µs on the development VM).
 */
import * as fs from 'node:fs';
import { DmiError, fsError } from '../errors.js';
import { ExtentMap, type Extent } from './extents.js';
import { probeSize } from './size.js';

/** Bytes per block read: dm-thin's metadata block (MD_BLOCK_SIZE, 4 KiB); thin/ re-exports it. */
export const BLOCK_SIZE = 4096;

export interface BlockSourceOptions {
  /** Byte offset of the metadata inside the file or device, or inside the `extents` space (default 0). */
  offset?: number;
  /** Byte length of the metadata (default: from the offset to the end of the file, device or `extents`). */
  length?: number;
  /**
   * The logical byte space is these extents, in order, concatenated (each one a byte range of `path`, or of
   * the path given to open). `offset` / `length` then select inside that space.
   */
  extents?: Extent[];
  /** Name used in messages instead of the path (e.g. `disk.img: docker/thinpool_tmeta`). */
  label?: string;
  /** Blocks per read of a scattered block (default 8 = 32 KiB). */
  chunkBlocks?: number;
  /** Upper bound of the chunk cache in bytes (default 256 KiB: fresh memory costs page faults, and walks copy what they keep). */
  cacheBytes?: number;
  /** Blocks per read when reading sequentially (default 64 = 256 KiB). */
  streamBlocks?: number;
}

export interface BlockSourceStats {
  /** read(2) calls made. */
  reads: number;
  /** Bytes read from the file. */
  bytesRead: number;
}

export class BlockSource {
  /** The file path, or the `label` given (used in messages). */
  readonly path: string;
  /** Whole 4 KiB blocks available. */
  readonly nrBlocks: number;
  readonly stats: BlockSourceStats = { reads: 0, bytesRead: 0 };
  private fds: Map<string, number> | null;
  private readonly map: ExtentMap;
  private readonly base: number;
  private readonly chunkBlocks: number;
  private readonly maxChunks: number;
  private readonly chunks = new Map<number, Buffer>();
  private readonly streamBlocks: number;
  /** The read-ahead: blocks [streamFirst, streamFirst + streamCount) in `stream`. */
  private stream: Buffer | null = null;
  private streamFirst = 0;
  private streamCount = 0;
  /** The chunk of the last block read from the file (−2: none), to tell sequential reading. */
  private lastChunk = -2;

  private constructor(
    path: string,
    fds: Map<string, number>,
    map: ExtentMap,
    base: number,
    nrBlocks: number,
    chunkBlocks: number,
    maxChunks: number,
    streamBlocks: number,
  ) {
    this.path = path;
    this.fds = fds;
    this.map = map;
    this.base = base;
    this.nrBlocks = nrBlocks;
    this.chunkBlocks = chunkBlocks;
    this.maxChunks = maxChunks;
    this.streamBlocks = streamBlocks;
  }

  /** Opens `path` (and every extent's file) read-only. Throws NOT_FOUND / PERMISSION / BAD_INPUT (range outside the file). */
  static open(path: string, opts: BlockSourceOptions = {}): BlockSource {
    const fds = new Map<string, number>();
    const sizes = new Map<string, number>();
    const openOne = (p: string): void => {
      if (fds.has(p)) return;
      let fd: number;
      try {
        fd = fs.openSync(p, 'r');
      } catch (e) {
        throw fsError(e, p, 'open');
      }
      fds.set(p, fd);
      try {
        const st = fs.fstatSync(fd);
        if (st.isDirectory())
          throw new DmiError('BAD_INPUT', `${p}: is a directory, expected a metadata file or device`);
        sizes.set(p, st.isBlockDevice() || st.isCharacterDevice() ? probeSize(fd) : st.size);
      } catch (e) {
        throw fsError(e, p);
      }
    };
    try {
      openOne(path);
      let map: ExtentMap;
      if (opts.extents) {
        map = new ExtentMap(opts.extents, path);
        for (const e of map.extents) {
          openOne(e.path);
          const size = sizes.get(e.path)!;
          if (e.offset + e.length > size) {
            throw new DmiError('BAD_INPUT', `${e.path}: range ${e.offset}+${e.length} is past the end (${size} bytes)`);
          }
        }
      } else {
        map = new ExtentMap([{ path, offset: 0, length: sizes.get(path)! }]);
      }
      const name = opts.label ?? path;
      const size = map.length;
      const base = opts.offset ?? 0;
      if (!Number.isSafeInteger(base) || base < 0) throw new DmiError('USAGE', `bad metadata offset ${base}`);
      if (base > size) throw new DmiError('BAD_INPUT', `${name}: offset ${base} is past the end (${size} bytes)`);
      let length = size - base;
      if (opts.length !== undefined) {
        if (!Number.isSafeInteger(opts.length) || opts.length < 0)
          throw new DmiError('USAGE', `bad metadata length ${opts.length}`);
        if (opts.length > length) {
          throw new DmiError('BAD_INPUT', `${name}: range ${base}+${opts.length} is past the end (${size} bytes)`);
        }
        length = opts.length;
      }
      const chunkBlocks = Math.max(1, Math.floor(opts.chunkBlocks ?? 8));
      const maxChunks = Math.max(2, Math.floor((opts.cacheBytes ?? 256 * 1024) / (chunkBlocks * BLOCK_SIZE)));
      const streamBlocks = Math.max(chunkBlocks, Math.floor(opts.streamBlocks ?? 64));
      const nrBlocks = Math.floor(length / BLOCK_SIZE);
      return new BlockSource(name, fds, map, base, nrBlocks, chunkBlocks, maxChunks, streamBlocks);
    } catch (e) {
      for (const fd of fds.values()) fs.closeSync(fd);
      throw fsError(e, path);
    }
  }

  /**
   * Block `n` as a 4096-byte Buffer: a view into a cached chunk or the read-ahead, **valid until a later read
   * evicts that chunk or reads ahead again** (buffers are reused to keep memory flat). Copy it (`Buffer.from(b)`)
   * to keep it across other reads; do not modify it. Throws BAD_INPUT if `n` is past the end, naming `what`.
   */
  read(n: number, what?: string): Buffer {
    if (!(n >= 0 && n < this.nrBlocks) || !Number.isInteger(n)) {
      throw new DmiError(
        'BAD_INPUT',
        `${what ? `${what}: ` : ''}block ${n} is past the end of the metadata (${this.nrBlocks} blocks of 4 KiB in ${this.path})`,
        { block: n },
      );
    }
    const s = n - this.streamFirst;
    if (s >= 0 && s < this.streamCount) return this.stream!.subarray(s * BLOCK_SIZE, (s + 1) * BLOCK_SIZE);
    const c = Math.floor(n / this.chunkBlocks);
    let chunk = this.chunks.get(c);
    if (chunk) {
      // LRU: move to the most recent end.
      this.chunks.delete(c);
      this.chunks.set(c, chunk);
    } else if (c === this.lastChunk + 1 || (this.streamCount > 0 && n === this.streamFirst + this.streamCount)) {
      return this.readAhead(n);
    } else {
      chunk = this.load(c);
    }
    const off = (n - c * this.chunkBlocks) * BLOCK_SIZE;
    return chunk.subarray(off, off + BLOCK_SIZE);
  }

  /** Reads `streamBlocks` blocks from `n` (fewer at the end) into the read-ahead buffer; returns block n. */
  private readAhead(n: number): Buffer {
    const count = Math.min(this.streamBlocks, this.nrBlocks - n);
    this.stream ??= Buffer.from(new ArrayBuffer(this.streamBlocks * BLOCK_SIZE));
    this.streamCount = 0; // nothing valid while it is being filled
    this.fill(this.stream, n, count);
    this.streamFirst = n;
    this.streamCount = count;
    this.lastChunk = Math.floor((n + count - 1) / this.chunkBlocks);
    return this.stream.subarray(0, BLOCK_SIZE);
  }

  private load(c: number): Buffer {
    const first = c * this.chunkBlocks;
    const count = Math.min(this.chunkBlocks, this.nrBlocks - first);
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
    this.fill(buf, first, count);
    this.lastChunk = c;
    this.chunks.set(c, buf);
    return buf;
  }

  /** Reads blocks [first, first + count) into `buf` from its start. */
  private fill(buf: Buffer, first: number, count: number): void {
    const fds = this.fds;
    if (fds === null) throw new DmiError('IO', `${this.path}: metadata source is closed`);
    const bytes = count * BLOCK_SIZE;
    const start = this.base + first * BLOCK_SIZE;
    for (const piece of this.map.pieces(start, bytes)) {
      const fd = fds.get(piece.path)!;
      let done = 0;
      while (done < piece.length) {
        let got: number;
        try {
          got = fs.readSync(fd, buf, piece.at - start + done, piece.length - done, piece.offset + done);
        } catch (e) {
          throw fsError(e, piece.path);
        }
        this.stats.reads++;
        if (got === 0) {
          const block = first + Math.floor((piece.at - start + done) / BLOCK_SIZE);
          throw new DmiError(
            'BAD_INPUT',
            `${this.path}: truncated while reading block ${block}${piece.path !== this.path ? ` (${piece.path} at byte ${piece.offset + done})` : ''}`,
          );
        }
        done += got;
      }
    }
    this.stats.bytesRead += bytes;
  }

  /**
   * The logical byte space as file ranges in order, with their open descriptors (valid until close), and the
   * logical byte offset of block 0: for a reader that does its own reads in several threads (thin/usage.ts).
   * Its reads are added to `stats` with `count`.
   */
  fileRanges(): { base: number; ranges: { fd: number; path: string; offset: number; length: number }[] } {
    const fds = this.fds;
    if (fds === null) throw new DmiError('IO', `${this.path}: metadata source is closed`);
    return {
      base: this.base,
      ranges: this.map.extents.map((e) => ({ fd: fds.get(e.path)!, path: e.path, offset: e.offset, length: e.length })),
    };
  }

  /** Adds reads done through `fileRanges` to `stats`. */
  count(reads: number, bytes: number): void {
    this.stats.reads += reads;
    this.stats.bytesRead += bytes;
  }

  close(): void {
    if (this.fds !== null) {
      for (const fd of this.fds.values()) fs.closeSync(fd);
      this.fds = null;
    }
    this.chunks.clear();
    this.stream = null;
    this.streamCount = 0;
  }
}
