/**
 * CRC-32C (Castagnoli, thin metadata block checksums) and CRC-32 (IEEE, GPT headers), each with the
 * semantics of @node-rs/crc32: `crc32c(buf, prev)` continues a standard CRC (initial ~0, final inversion).
 *
 * Two implementations with identical results:
 * - native: the @node-rs/crc32 addon (SSE 4.2 `crc32` instruction), loaded at run time under Node when it loads;
 * - portable: slice-by-8 tables in plain JavaScript, used when the addon cannot load, in the single-file binary
 *   (Bun), or when DMINSPECT_CRC=portable.
 * The binary never carries the addon: `bun build --compile` would write an embedded `.node` to /tmp and dlopen it
 * at each start, which fails where /tmp is noexec and leaves files behind. The module name is computed so that no
 * bundler follows it.
 */
import { createRequire } from 'node:module';

type CrcFn = (input: Uint8Array, initialState?: number) => number;

/**
 * A slice-by-8 CRC over the reflected polynomial `poly`. Self-contained (no outside references): thin/usage.ts
 * evaluates its source text in a worker thread.
 */
export function sliceBy8(poly: number): CrcFn {
  const t: Uint32Array[] = [];
  for (let k = 0; k < 8; k++) t.push(new Uint32Array(256));
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let j = 0; j < 8; j++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[0]![i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    let c = t[0]![i]!;
    for (let k = 1; k < 8; k++) {
      c = t[0]![c & 0xff]! ^ (c >>> 8);
      t[k]![i] = c >>> 0;
    }
  }
  const [t0, t1, t2, t3, t4, t5, t6, t7] = t as [
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
  ];
  return (buf, initialState = 0) => {
    let crc = ~initialState >>> 0;
    const n = buf.length;
    let i = 0;
    const end8 = n - (n % 8);
    while (i < end8) {
      const a = crc ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
      const b = buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24);
      crc =
        t7[a & 0xff]! ^
        t6[(a >>> 8) & 0xff]! ^
        t5[(a >>> 16) & 0xff]! ^
        t4[a >>> 24]! ^
        t3[b & 0xff]! ^
        t2[(b >>> 8) & 0xff]! ^
        t1[(b >>> 16) & 0xff]! ^
        t0[b >>> 24]!;
      i += 8;
    }
    while (i < n) crc = t0[(crc ^ buf[i++]!) & 0xff]! ^ (crc >>> 8);
    return ~crc >>> 0;
  };
}

let portable: { crc32c: CrcFn; crc32: CrcFn } | null = null;

/**
 * The portable functions, their tables built at the first use: not at import, which every run but `--version` alone
 * pays (two tables, about 7M instructions in the interpreter), while most runs compute no CRC or use the addon.
 */
function portableFns(): { crc32c: CrcFn; crc32: CrcFn } {
  return (portable ??= { crc32c: sliceBy8(0x82f63b78), crc32: sliceBy8(0xedb88320) });
}

/** Plain-JavaScript CRC-32C (reflected 0x82F63B78). */
export const portableCrc32c: CrcFn = (b, s) => portableFns().crc32c(b, s);
/** Plain-JavaScript CRC-32 (reflected 0xEDB88320, zlib's). */
export const portableCrc32: CrcFn = (b, s) => portableFns().crc32(b, s);

interface NativeCrc {
  crc32: (input: Uint8Array, initialState?: number | null) => number;
  crc32c: (input: Uint8Array, initialState?: number | null) => number;
}

/** The addon, or null under Bun, with DMINSPECT_CRC=portable, or when it does not load (no prebuilt for this platform). */
export function loadNativeCrc(): NativeCrc | null {
  return loadNative()?.mod ?? null;
}

function loadNative(): { mod: NativeCrc; path: string } | null {
  if (process.versions.bun !== undefined || process.env.DMINSPECT_CRC === 'portable') return null;
  const req = createRequire(import.meta.url);
  const load = (name: string): { mod: NativeCrc; path: string } | null => {
    try {
      const path = req.resolve(name);
      const mod = req(path) as NativeCrc;
      return typeof mod.crc32c === 'function' && typeof mod.crc32 === 'function' ? { mod, path } : null;
    } catch {
      return null;
    }
  };
  // On glibc Linux, the platform's own package first: the generic loader (@node-rs/crc32's index.js) first tries a
  // file that is not there, reads /usr/bin/ldd to tell musl from glibc and checks versions, 6–10 ms at every start.
  // npm installs the -gnu package only on glibc (its `libc` field); anywhere else this fails and the generic loader runs.
  const own =
    process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')
      ? load(['@node-rs', `crc32-linux-${process.arch}-gnu`].join('/'))
      : null;
  return own ?? load(['@node-rs', 'crc32'].join('/'));
}

interface Chosen {
  implementation: 'native' | 'portable';
  crc32c: CrcFn;
  crc32: CrcFn;
  /** The addon's resolved module path (a worker thread loads the same one), or null. */
  nativePath: string | null;
}
let chosen: Chosen | null = null;

/**
 * The implementation, picked at the first checksum (not at import: a run that checks no block, `--version` aside,
 * loads no addon; issue 15's start-up).
 */
function pick(): Chosen {
  if (chosen) return chosen;
  const loaded = loadNative();
  const native = loaded?.mod ?? null;
  chosen = native
    ? {
        implementation: 'native',
        crc32c: (b, s) => native.crc32c(b, s),
        crc32: (b, s) => native.crc32(b, s),
        nativePath: loaded!.path,
      }
    : { implementation: 'portable', ...portableFns(), nativePath: null };
  return chosen;
}

/** The addon's resolved module path when this process uses it (a worker thread loads the same one), else null. */
export function nativeCrcPath(): string | null {
  return pick().nativePath;
}

/** Which implementation this process uses: `native` (@node-rs/crc32) or `portable` (slice-by-8 JavaScript). */
export function crcImplementation(): 'native' | 'portable' {
  return pick().implementation;
}

export const crc32c: CrcFn = (b, s) => pick().crc32c(b, s);
/** The chosen CRC-32C itself (one call less per block than `crc32c`, for loops over many blocks). */
export const crc32cFunction = (): CrcFn => pick().crc32c;
export const crc32: CrcFn = (b, s) => pick().crc32(b, s);
