/**
 * A few fields of a JSON document, read from its bytes without building the rest: a listing of 10,000 containers
 * wants 15 of the ~60 values in each config.v2.json, and JSON.parse of the whole text (with its UTF-8 decoding and
 * the garbage it leaves) was most of the CPU time beyond the reads (issue 15).
 *
 * `pickJson` checks the whole document against the JSON grammar (RFC 8259, as JSON.parse does) and answers, for the
 * fields asked for, the values JSON.parse would give them (the last of duplicate keys wins, as there). It answers
 * null for anything it does not handle the simple way (a document that is not valid JSON or not an object, a key
 * or an asked-for string with a backslash escape, an asked-for value that is an array or an object where a scalar
 * was asked for, nesting deeper than 256): the caller then parses the text with JSON.parse, so every error and
 * every unusual value stays what it was.
 */

/** The fields to pick: `true` for a value, a nested spec for the members of an object value. */
export interface PickSpec {
  readonly [key: string]: true | PickSpec;
}

/** A spec prepared for the scanner: the keys' bytes, and for each its nested spec or null (a leaf). */
export interface CompiledPick {
  readonly keys: string[];
  readonly bytes: Uint8Array[];
  readonly subs: (CompiledPick | null)[];
}

export function compilePick(spec: PickSpec): CompiledPick {
  const keys = Object.keys(spec);
  for (const k of keys)
    if (!/^[\x20-\x7e]+$/.test(k) || k.includes('"') || k.includes('\\'))
      throw new Error(`pick key ${k}: not plain ASCII`);
  return {
    keys,
    bytes: keys.map((k) => Uint8Array.from(k, (ch) => ch.charCodeAt(0))),
    subs: keys.map((k) => {
      const v = spec[k];
      return v === true ? null : compilePick(v!);
    }),
  };
}

const MAX_DEPTH = 256;

/**
 * Byte classes inside a string: 0 a plain ASCII byte, 1 the closing quote, 2 a backslash, 3 a control byte (not
 * allowed raw), 4 a byte ≥ 0x80 (part of a UTF-8 sequence; JSON.parse of the decoded text takes any).
 */
const IN_STRING = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) IN_STRING[c] = 3;
IN_STRING[0x22] = 1;
IN_STRING[0x5c] = 2;
for (let c = 0x80; c < 0x100; c++) IN_STRING[c] = 4;

/** Hex digits for \uXXXX. */
const HEX = new Uint8Array(256);
for (const ch of '0123456789abcdefABCDEF') HEX[ch.charCodeAt(0)] = 1;

// Positions are passed and returned (-1: not read); the flags of the last string read are module state, written
// only when set (a position kept in a module variable is a memory store per byte, three times slower).
/** The string just read had a backslash escape / a byte ≥ 0x80. */
let escaped = false;
let wide = false;

/**
 * The picked fields of the JSON document in `bytes` (a plain object holding only the keys found, nested objects
 * likewise), or null when the document is not one the scanner reads the simple way (see the file comment).
 */
export function pickJson(bytes: Uint8Array, spec: CompiledPick): Record<string, unknown> | null {
  const n = bytes.length;
  let i = ws(bytes, n, 0);
  if (i >= n || bytes[i] !== 0x7b) return null;
  const out: Record<string, unknown> = {};
  i = obj(bytes, n, i + 1, spec, out, 1);
  return i >= 0 && ws(bytes, n, i) === n ? out : null;
}

function ws(b: Uint8Array, n: number, i: number): number {
  while (i < n) {
    const c = b[i]!;
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
    else break;
  }
  return i;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** A string's rest, `i` just after its opening quote: the position after the closing quote. */
function str(b: Uint8Array, n: number, i: number): number {
  escaped = false;
  wide = false;
  for (;;) {
    let cls = 0;
    while (i < n && (cls = IN_STRING[b[i]!]!) === 0) i++;
    if (i >= n) return -1;
    if (cls === 1) return i + 1;
    if (cls === 4) {
      wide = true;
      i++;
    } else if (cls === 2) {
      escaped = true;
      if (i + 1 >= n) return -1;
      const e = b[i + 1]!;
      if (e === 0x75) {
        if (i + 5 >= n || !HEX[b[i + 2]!] || !HEX[b[i + 3]!] || !HEX[b[i + 4]!] || !HEX[b[i + 5]!]) return -1;
        i += 6;
      } else if (
        e === 0x22 ||
        e === 0x5c ||
        e === 0x2f ||
        e === 0x62 ||
        e === 0x66 ||
        e === 0x6e ||
        e === 0x72 ||
        e === 0x74
      )
        i += 2;
      else return -1;
    } else return -1; // a raw control byte
  }
}

/** A number (RFC 8259 grammar), `i` at its first byte: the position after it. */
function num(b: Uint8Array, n: number, i: number): number {
  if (b[i] === 0x2d) i++;
  if (i >= n) return -1;
  const first = b[i]!;
  if (first === 0x30) i++;
  else if (first >= 0x31 && first <= 0x39) {
    i++;
    while (i < n && isDigit(b[i]!)) i++;
  } else return -1;
  if (i < n && b[i] === 0x2e) {
    const s = ++i;
    while (i < n && isDigit(b[i]!)) i++;
    if (i === s) return -1;
  }
  if (i < n && (b[i] === 0x65 || b[i] === 0x45)) {
    i++;
    if (i < n && (b[i] === 0x2b || b[i] === 0x2d)) i++;
    const s = i;
    while (i < n && isDigit(b[i]!)) i++;
    if (i === s) return -1;
  }
  return i;
}

/** `true`, `false` or `null` at `i`: its length, or 0. */
function literal(b: Uint8Array, n: number, i: number): number {
  const c = b[i];
  if (c === 0x74) return i + 3 < n && b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65 ? 4 : 0; // true
  if (c === 0x66)
    return i + 4 < n && b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65 ? 5 : 0;
  if (c === 0x6e) return i + 3 < n && b[i + 1] === 0x75 && b[i + 2] === 0x6c && b[i + 3] === 0x6c ? 4 : 0; // null
  return 0;
}

/** Any value at `i`, checked and skipped: the position after it. */
function skip(b: Uint8Array, n: number, i: number, depth: number): number {
  if (i >= n) return -1;
  const c = b[i]!;
  if (c === 0x22) return str(b, n, i + 1);
  if (c === 0x7b) return obj(b, n, i + 1, null, null, depth + 1);
  if (c === 0x5b) return arr(b, n, i + 1, depth + 1);
  if (c === 0x2d || isDigit(c)) return num(b, n, i);
  const l = literal(b, n, i);
  return l > 0 ? i + l : -1;
}

function arr(b: Uint8Array, n: number, i: number, depth: number): number {
  if (depth > MAX_DEPTH) return -1;
  i = ws(b, n, i);
  if (i < n && b[i] === 0x5d) return i + 1;
  for (;;) {
    i = skip(b, n, i, depth);
    if (i < 0) return -1;
    i = ws(b, n, i);
    if (i >= n) return -1;
    const c = b[i++];
    if (c === 0x5d) return i;
    if (c !== 0x2c) return -1;
    i = ws(b, n, i);
  }
}

/** Which of `spec`'s keys the bytes [s, e) are, or -1. */
function keyIndex(b: Uint8Array, spec: CompiledPick, s: number, e: number): number {
  const len = e - s;
  const all = spec.bytes;
  for (let k = 0; k < all.length; k++) {
    const kb = all[k]!;
    if (kb.length !== len) continue;
    let j = 0;
    while (j < len && kb[j] === b[s + j]) j++;
    if (j === len) return k;
  }
  return -1;
}

/**
 * An object's members, `i` just after its `{`, the asked-for ones into `out` (spec null: none asked for): the
 * position after its `}`.
 */
function obj(
  b: Uint8Array,
  n: number,
  i: number,
  spec: CompiledPick | null,
  out: Record<string, unknown> | null,
  depth: number,
): number {
  if (depth > MAX_DEPTH) return -1;
  i = ws(b, n, i);
  if (i < n && b[i] === 0x7d) return i + 1;
  for (;;) {
    if (i >= n || b[i] !== 0x22) return -1;
    const s = i + 1;
    i = str(b, n, s);
    if (i < 0) return -1;
    let k = -1;
    if (spec !== null) {
      if (escaped) return -1; // "\u0049D" is "ID": such keys are left to JSON.parse
      k = keyIndex(b, spec, s, i - 1);
    }
    i = ws(b, n, i);
    if (i >= n || b[i] !== 0x3a) return -1;
    i = ws(b, n, i + 1);
    i = k < 0 ? skip(b, n, i, depth) : take(b, n, i, spec!, k, out!, depth);
    if (i < 0) return -1;
    i = ws(b, n, i);
    if (i >= n) return -1;
    const c = b[i++];
    if (c === 0x7d) return i;
    if (c !== 0x2c) return -1;
    i = ws(b, n, i);
  }
}

/**
 * The value of asked-for key `k` at `i`, into `out` (replacing an earlier duplicate, as JSON.parse does): the
 * position after it.
 */
function take(
  b: Uint8Array,
  n: number,
  i: number,
  spec: CompiledPick,
  k: number,
  out: Record<string, unknown>,
  depth: number,
): number {
  if (i >= n) return -1;
  const name = spec.keys[k]!;
  const sub = spec.subs[k] ?? null;
  const c = b[i]!;
  if (c === 0x7b) {
    if (sub === null) return -1; // an object where a scalar was asked for
    const o: Record<string, unknown> = {};
    out[name] = o;
    return obj(b, n, i + 1, sub, o, depth + 1);
  }
  if (c === 0x5b) return -1;
  if (c === 0x22) {
    const s = i + 1;
    i = str(b, n, s);
    if (i < 0 || escaped) return -1;
    out[name] = decode(b, s, i - 1, wide);
    return i;
  }
  if (c === 0x2d || isDigit(c)) {
    const e = num(b, n, i);
    if (e < 0) return -1;
    out[name] = Number(decode(b, i, e, false));
    return e;
  }
  const l = literal(b, n, i);
  if (l === 0) return -1;
  out[name] = l === 5 ? false : c === 0x74 ? true : null;
  return i + l;
}

/** Bytes [s, e) as text: UTF-8 (what decoding the whole file would give them: a string ends at an ASCII quote). */
function decode(b: Uint8Array, s: number, e: number, utf8: boolean): string {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return buf.toString(utf8 ? 'utf8' : 'latin1', s, e);
}
