/**
 * The hot loop of the usage walk (usage.ts): reads, verifies and walks the bottom-level mapping trees of the devices
 * in the batches this thread claims, keeping an owner word per data block and, per leaf, how many of its data blocks
 * it still owns (the algorithm is described in usage.ts).
 *
 * `usageKernel` is **self-contained**: it refers to nothing outside its own body, so that usage.ts can run the very
 * same code in a worker thread from its source text (`usageKernel.toString()`, evaluated; this also works in the
 * single-file Bun binary, where there are no module files to load). Keep it that way: no imports, no module-level
 * constants, no helpers from outside.
 *
 * It allocates nothing per node: blocks are read in chunks into a direct-mapped cache and decoded as u32 words. On the
 * first problem it writes a numeric description to `err` (see `KERNEL_ERROR`) and throws; usage.ts turns that into
 * the one-line error, reproducing the canonical message with the ordinary readers where there is one.
 */

/** The numbers the kernel writes to `err[0]`; err[1] = block, err[2] = parent, err[3..7] = details. */
export const KERNEL_ERROR = {
  /** Checksum or self block number of node err[1] is wrong (verifyBlock says which). */
  VERIFY: 1,
  /** Node header fails the checks of decodeNodeHeader. */
  HEADER: 2,
  /** Key err[3] = index, err[4] = key, err[5] = previous key, err[6] = lo, err[7] = hi. */
  KEY: 3,
  /** Virtual block err[3] maps data block err[4], past the data device. */
  DATA_PAST_END: 4,
  /** Child err[1] of node err[2] (−1: a device root) is past the end of the metadata. */
  PAST_END: 5,
  /** Child err[1] of node err[2] points back to an ancestor. */
  CYCLE: 6,
  /** Node err[1] is deeper than MAX_DEPTH. */
  DEPTH: 7,
  /** Reading block err[1] hit the end of the file (err[3]: extent index). */
  TRUNCATED: 8,
} as const;

/** What the caller gives the kernel. Typed arrays may be shared (SharedArrayBuffer) with another thread. */
export interface KernelArgs {
  /** pread(2) of extent `ext` (index into `extents`): bytes at file offset `pos` into `buf[off, off + len)`. */
  pread: (ext: number, buf: Uint8Array, off: number, len: number, pos: number) => number;
  /** Standard CRC-32C (initial ~0, final inversion) of `bytes`. */
  crc: (bytes: Uint8Array) => number;
  /** The logical metadata space, flat: [file offset, length] per extent, in order. */
  extents: Float64Array;
  /** Logical byte offset of metadata block 0. */
  base: number;
  /** Blocks readable; blocks the metadata counts; data blocks in the pool. */
  nrBlocks: number;
  metadataBlocks: number;
  dataNrBlocks: number;
  /** Bottom-tree root of each device, in device (index) order. */
  roots: Float64Array;
  /** [0]: next batch to claim (Atomics.add); [2]: non-zero asks to stop before the next batch. */
  ctl: Int32Array;
  nBatches: number;
  batchSize: number;
  /** Output, per metadata block: walk state (0 = unseen). */
  state: Uint8Array;
  /**
   * Output, per device index: data blocks mapped once, by that device (this thread's view). 32-bit: a thread counts
   * each leaf once, so at most MAX_METADATA_BLOCKS × 252 < 2^31 mappings; integers stay small integers in V8 (a
   * Float64Array's elements are boxed numbers until the code is optimized: 3 MB of garbage per walk).
   */
  exclusive: Int32Array;
  /**
   * Owner words of data blocks p·65536 … (page p): 0 = unmapped, device index + 1 = mapped once, `shared` = mapped
   * twice or more. 16-bit words while there are fewer than 65535 devices. `pages` holds the pages the caller made up
   * front (views of one zero-filled buffer: memory is only touched where blocks are mapped), `newPage` makes any other
   * page zero-filled at its first use (a data device past what the caller made: only hostile or enormous pools).
   * Made up front, no page is created in the optimized leaf loop, whose first call of `newPage` there would have no
   * type feedback and deoptimize it.
   */
  pages: (Uint16Array | Uint32Array | undefined)[];
  newPage: (p: number) => Uint16Array | Uint32Array;
  /** Output, per page: set non-zero when this thread uses page p (the merge of two threads reads only those). */
  touched: Uint8Array;
  /** The "shared" owner word: 0xffff with 16-bit pages, 0xffffffff with 32-bit ones. */
  shared: number;
  /**
   * Outputs: [0] nodes, [1] shared nodes, [2] mappings, [3] distinct data blocks, [4] reads, [5] bytes read, [6] batch
   * and [7] device index being walked, [8] one past the highest block in `state` set (0: none).
   */
  stats: Float64Array;
  /** Output: the first problem (KERNEL_ERROR), when the kernel throws. */
  err: Float64Array;
}

export function usageKernel(k: KernelArgs): void {
  const PAGE = 65536;
  const TWO32 = 4294967296;
  const MAX_DEPTH = 16;
  const SALT = 121107; // btree nodes
  const UNSEEN = 0;
  const ON_STACK = 1;
  const INTERNAL_DONE = 2;
  const LEAF_DONE = 3;
  const SHARED_NODE = 4;
  const CHUNK = 32; // blocks per read
  const SLOTS = 2; // chunks cached (256 KiB: little fresh memory, few page faults)
  const { pread, crc, extents, base, nrBlocks, metadataBlocks, dataNrBlocks, roots, ctl, state, exclusive } = k;
  const { stats, err, nBatches, batchSize, touched } = k;
  const SHARED = k.shared;
  const nDevices = roots.length;

  const cache = new Uint8Array(SLOTS * CHUNK * 4096);
  // The blocks as little-endian 32-bit words: on a little-endian host a view of the cache itself; on a big-endian one
  // (s390x) a copy decoded as each chunk is read (readLogical), while the checksums are computed over the bytes as
  // stored. Without the copy, a big-endian host would see every node's checksum wrong.
  const hostLE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  const cw = hostLE ? new Uint32Array(cache.buffer) : new Uint32Array(cache.length / 4);
  const stored = hostLE ? null : new DataView(cache.buffer);
  const tags = new Float64Array(SLOTS).fill(-1);
  // The checksummed bytes [4, 4096) of each cached block, as views made once (nothing allocated per node).
  const sums: Uint8Array[] = [];
  for (let i = 0; i < SLOTS * CHUNK; i++) sums.push(cache.subarray(i * 4096 + 4, (i + 1) * 4096));
  const noPage: Uint16Array | Uint32Array = SHARED === 0xffff ? new Uint16Array(0) : new Uint32Array(0);
  // The caller's page table has one slot per page of the data device (reading past the end of a growing array
  // deoptimizes the optimized leaf loop: "out of bounds"), bounded for a hostile data size.
  const pages = k.pages;
  const ci = new Int32Array(cw.buffer);
  let top = 0;
  let nodes = 0;
  let sharedNodes = 0;
  let mappings = 0;
  let dataBlocks = 0;
  let reads = 0;
  let bytesRead = 0;

  const fail = (kind: number, block: number, parent: number, a = 0, b = 0, c = 0, d = 0, e = 0): never => {
    err[0] = kind;
    err[1] = block;
    err[2] = parent;
    err[3] = a;
    err[4] = b;
    err[5] = c;
    err[6] = d;
    err[7] = e;
    throw new Error('usage walk: bad metadata');
  };

  /** Logical bytes [pos, pos + len) into cache[off, …). */
  const readLogical = (off: number, len: number, pos: number, first: number): void => {
    let e = 0;
    let at = 0;
    while (e < extents.length && at + extents[e + 1]! <= pos) {
      at += extents[e + 1]!;
      e += 2;
    }
    let done = 0;
    while (done < len) {
      if (e >= extents.length) fail(8, first + Math.floor(done / 4096), -1, e / 2);
      const skip = pos + done - at;
      const n = Math.min(extents[e + 1]! - skip, len - done);
      let got = 0;
      while (got < n) {
        const r = pread(e / 2, cache, off + done + got, n - got, extents[e]! + skip + got);
        reads++;
        if (r === 0) fail(8, first + Math.floor((done + got) / 4096), -1, e / 2);
        got += r;
      }
      done += n;
      at += extents[e + 1]!;
      e += 2;
    }
    if (stored !== null) for (let i = off; i < off + len; i += 4) cw[i >>> 2] = stored.getUint32(i, true);
    bytesRead += len;
  };

  /** Word offset of block n in `cw` (read when not cached). */
  const load = (n: number): number => {
    const c = Math.floor(n / CHUNK);
    const slot = c % SLOTS;
    if (tags[slot] !== c) {
      const first = c * CHUNK;
      const count = Math.min(CHUNK, nrBlocks - first);
      tags[slot] = -1;
      readLogical(slot * CHUNK * 4096, count * 4096, base + first * 4096, first);
      tags[slot] = c;
    }
    return (slot * CHUNK + (n - c * CHUNK)) * 1024;
  };

  /** First read of node n in this walk: checksum, block number, header. Returns its word offset. */
  const verified = (n: number): number => {
    const w = load(n);
    // Compared as signed 32-bit words: small integers in V8 (the unsigned word ≥ 2^31 is a boxed number unoptimized).
    if ((crc(sums[w / 1024]!) ^ ~SALT) !== ci[w] || cw[w + 2] !== n % TWO32 || cw[w + 3] !== Math.floor(n / TWO32))
      fail(1, n, -1);
    const flags = cw[w + 1]!;
    const nr = cw[w + 4]!;
    const max = cw[w + 5]!;
    if (
      (flags !== 1 && flags !== 2) ||
      cw[w + 6] !== 8 ||
      max === 0 ||
      32 + 16 * max > 4096 ||
      max % 3 !== 0 ||
      nr > max
    )
      fail(2, n, -1);
    return w;
  };

  const badKey = (block: number, i: number, key: number, prev: number, lo: number, hi: number): never =>
    fail(3, block, -1, i, key, prev, lo, hi);

  /**
   * First visit of a leaf at word offset w, reached by device index `dev`. Keys must lie in [lo, hi). The common
   * case (keys and data blocks below 2^31, all valid) is checked and counted in one pass with integer arithmetic; at
   * the first entry outside it, `leafGeneric` goes on from that entry: it names the first problem (the walk then
   * fails) or counts the large values.
   */
  const leaf = (block: number, w: number, dev: number, lo: number, hi: number): void => {
    const nr = cw[w + 4]!;
    const kb = w + 8;
    const vb = w + 8 + 2 * cw[w + 5]!;
    if (nr > 0 && cw[kb]! < lo) return leafGeneric(block, w, dev, lo, hi, 0, -1);
    const me = dev + 1;
    let prev = -1;
    let fresh = 0;
    let pageNr = -1;
    let page = noPage;
    // Written so that every compare and element access runs on the first leaves too (all data blocks fresh): a
    // branch first taken in optimized code (the first block mapped twice, when the snapshots come) has no type
    // feedback and deoptimizes it ("insufficient type feedback"), leaving the walk in baseline code until it is
    // compiled again. Owner o (1 … SHARED−1) gives its block up: exclusive[o − 1] loses one; for o = me that is this
    // device's own count, so no separate case.
    let i = 0;
    for (; i < nr; i++) {
      const key = cw[kb + 2 * i]! | 0;
      const vhi = cw[vb + 2 * i + 1]!;
      if (key <= prev || key >= hi || cw[kb + 2 * i + 1] !== 0 || vhi >= 0x800000) break;
      const d = (vhi << 8) | (cw[vb + 2 * i]! >>> 24);
      if (d >= dataNrBlocks) break;
      prev = key;
      const p = d >>> 16;
      if (p !== pageNr) {
        pageNr = p;
        page = pages[p] ?? (pages[p] = k.newPage(p));
        touched[p] = 1;
      }
      const x = d & 0xffff;
      const o = page[x]!;
      if (o !== SHARED) {
        const taken = o === 0 ? 0 : 1;
        page[x] = taken === 0 ? me : SHARED;
        fresh += 1 - taken;
        exclusive[dev + taken * (o - me)]! -= taken;
      }
    }
    dataBlocks += fresh;
    mappings += i;
    exclusive[dev]! += fresh;
    // Entries 0 … i − 1 are valid in every way (order, range, size), so the first problem, if any, is at i or after.
    if (i < nr) return leafGeneric(block, w, dev, lo, hi, i, prev);
    state[block] = LEAF_DONE;
  };

  /** Entries `from` … of a leaf (`prev`: the key before `from`, −1 at 0), checked one by one, any size. */
  const leafGeneric = (
    block: number,
    w: number,
    dev: number,
    lo: number,
    hi: number,
    from: number,
    prev: number,
  ): void => {
    const nr = cw[w + 4]!;
    const kb = w + 8;
    const vb = w + 8 + 2 * cw[w + 5]!;
    const me = dev + 1;
    let owned = 0;
    for (let i = from; i < nr; i++) {
      const khi = cw[kb + 2 * i + 1]!;
      const key = khi * TWO32 + cw[kb + 2 * i]!;
      if (khi >= 0x200000 || key <= prev || key < lo || key >= hi) badKey(block, i, key, prev, lo, hi);
      prev = key;
      const d = cw[vb + 2 * i + 1]! * 256 + (cw[vb + 2 * i]! >>> 24);
      if (d >= dataNrBlocks) fail(4, block, -1, key, d);
      const p = (d / PAGE) | 0;
      let page = pages[p];
      if (page === undefined) page = pages[p] = k.newPage(p);
      touched[p] = 1;
      const x = d & 0xffff;
      const o = page[x]!;
      if (o === 0) {
        page[x] = me;
        owned++;
        dataBlocks++;
      } else if (o !== SHARED) {
        page[x] = SHARED;
        if (o === me) owned--;
        else exclusive[o - 1]!--;
      }
    }
    mappings += nr - from;
    exclusive[dev]! += owned;
    state[block] = LEAF_DONE;
  };

  /** Node `start` (already walked) is reached again: it and everything below it become shared. */
  const work: number[] = [];
  const markShared = (start: number): void => {
    work.length = 0;
    work.push(start);
    while (work.length > 0) {
      const b = work.pop()!;
      const s = state[b];
      if (s === SHARED_NODE) continue;
      sharedNodes++;
      state[b] = SHARED_NODE;
      const w = load(b);
      const nr = cw[w + 4]!;
      const vb = w + 8 + 2 * cw[w + 5]!;
      if (s === LEAF_DONE) {
        // Every data block of a walked leaf is owned by the device that walked it, or already shared.
        for (let i = 0; i < nr; i++) {
          const d = cw[vb + 2 * i + 1]! * 256 + (cw[vb + 2 * i]! >>> 24);
          const page = pages[(d / PAGE) | 0];
          if (page === undefined) continue;
          const o = page[d & 0xffff]!;
          if (o !== 0 && o !== SHARED) {
            page[d & 0xffff] = SHARED;
            exclusive[o - 1]!--;
          }
        }
      } else {
        for (let i = 0; i < nr; i++) {
          const c = cw[vb + 2 * i + 1]! * TWO32 + cw[vb + 2 * i]!;
          if (c < metadataBlocks && state[c] !== SHARED_NODE) work.push(c);
        }
      }
    }
  };

  // Explicit DFS stack of internal nodes (depth ≤ MAX_DEPTH); their words are copied (the cache slot may be reused).
  const stBlock = new Float64Array(MAX_DEPTH);
  const stNext = new Int32Array(MAX_DEPTH);
  const stHi = new Float64Array(MAX_DEPTH);
  const stBuf: Uint32Array[] = [];
  for (let i = 0; i < MAX_DEPTH; i++) stBuf.push(new Uint32Array(1024));
  const stNr = new Int32Array(MAX_DEPTH);
  const stVb = new Int32Array(MAX_DEPTH);

  /** Visits node `block` reached from `parent` (−1: the device's root) with key range [lo, hi). True if pushed. */
  const enter = (block: number, parent: number, dev: number, lo: number, hi: number, depth: number): boolean => {
    if (block >= metadataBlocks) fail(5, block, parent);
    const s = state[block]!;
    if (s === ON_STACK) fail(6, block, parent);
    if (s !== UNSEEN) {
      markShared(block);
      return false;
    }
    if (depth >= MAX_DEPTH) fail(7, block, parent);
    const w = verified(block);
    nodes++;
    if (block >= top) top = block + 1;
    if (cw[w + 1] === 2) {
      leaf(block, w, dev, lo, hi);
      return false;
    }
    const nr = cw[w + 4]!;
    // Keys of an internal node: ascending, inside [lo, hi).
    let prev = -1;
    for (let i = 0; i < nr; i++) {
      const khi = cw[w + 8 + 2 * i + 1]!;
      const key = khi * TWO32 + cw[w + 8 + 2 * i]!;
      if (khi >= 0x200000 || key <= prev || key < lo || key >= hi) badKey(block, i, key, prev, lo, hi);
      prev = key;
    }
    state[block] = ON_STACK;
    stBlock[depth] = block;
    stNext[depth] = 0;
    stHi[depth] = hi;
    stBuf[depth]!.set(cw.subarray(w, w + 1024));
    stNr[depth] = nr;
    stVb[depth] = 8 + 2 * cw[w + 5]!;
    return true;
  };

  const walkDevice = (di: number): void => {
    stats[7] = di;
    if (!enter(roots[di]!, -1, di, 0, Infinity, 0)) return;
    let depth = 0;
    while (depth >= 0) {
      const i = stNext[depth]!;
      if (i >= stNr[depth]!) {
        state[stBlock[depth]!] = INTERNAL_DONE;
        depth--;
        continue;
      }
      stNext[depth] = i + 1;
      const w = stBuf[depth]!;
      const vb = stVb[depth]!;
      const child = w[vb + 2 * i + 1]! * TWO32 + w[vb + 2 * i]!;
      const lo = w[8 + 2 * i + 1]! * TWO32 + w[8 + 2 * i]!;
      const hi = i + 1 < stNr[depth]! ? w[8 + 2 * i + 3]! * TWO32 + w[8 + 2 * i + 2]! : stHi[depth]!;
      if (enter(child, stBlock[depth]!, di, lo, hi, depth + 1)) depth++;
    }
  };

  try {
    for (;;) {
      if (Atomics.load(ctl, 2) !== 0) break;
      const b = Atomics.add(ctl, 0, 1);
      if (b >= nBatches) break;
      stats[6] = b;
      const end = Math.min(nDevices, (b + 1) * batchSize);
      for (let di = b * batchSize; di < end; di++) walkDevice(di);
    }
  } finally {
    stats[0] = nodes;
    stats[1] = sharedNodes;
    stats[2] = mappings;
    stats[3] = dataBlocks;
    stats[4] = reads;
    stats[5] = bytesRead;
    stats[8] = top;
  }
}
