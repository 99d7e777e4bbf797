/**
 * LVM2's text format (lib/config/config.c): `name { key = value ... }` sections, values that are strings
 * ("..." or '...', backslash escapes), numbers (integers or decimals) or lists `[ v, v, ... ]`, and
 * `#` comments. Parsed into plain sections; the parser is bounded (nesting depth, list length) because the
 * text comes from evidence.
 */
import { DmiError } from '../errors.js';

export type LvmScalar = string | number;
export type LvmValue = LvmScalar | LvmScalar[];

export interface LvmSection {
  name: string;
  /** Line of the section's name (1-based); 0 for the top level. */
  line: number;
  values: Map<string, LvmValue>;
  sections: Map<string, LvmSection>;
}

export const MAX_NESTING = 32;

type Tok =
  | { t: 'word'; v: string; line: number }
  | { t: 'string'; v: string; line: number }
  | { t: 'punct'; v: '{' | '}' | '[' | ']' | '=' | ','; line: number }
  | { t: 'eof'; line: number };

const PUNCT = new Set(['{', '}', '[', ']', '=', ',']);

class Lexer {
  private pos = 0;
  line = 1;
  private peeked: Tok | null = null;
  constructor(
    private readonly s: string,
    private readonly what: string,
  ) {}

  fail(line: number, msg: string): never {
    throw new DmiError('BAD_INPUT', `${this.what}: line ${line}: ${msg}`, { line });
  }

  peek(): Tok {
    this.peeked ??= this.lex();
    return this.peeked;
  }

  next(): Tok {
    const t = this.peek();
    this.peeked = null;
    return t;
  }

  private lex(): Tok {
    const s = this.s;
    for (;;) {
      if (this.pos >= s.length) return { t: 'eof', line: this.line };
      const c = s[this.pos]!;
      if (c === '\n') {
        this.line++;
        this.pos++;
      } else if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') this.pos++;
      else if (c === '#') {
        while (this.pos < s.length && s[this.pos] !== '\n') this.pos++;
      } else break;
    }
    const line = this.line;
    const c = s[this.pos]!;
    if (PUNCT.has(c)) {
      this.pos++;
      return { t: 'punct', v: c as '{', line };
    }
    if (c === '"' || c === "'") {
      this.pos++;
      let out = '';
      for (;;) {
        if (this.pos >= s.length) this.fail(line, 'unterminated string');
        const d = s[this.pos++]!;
        if (d === c) break;
        if (d === '\\' && c === '"' && this.pos < s.length) {
          const e = s[this.pos++]!;
          if (e === '\n') this.line++;
          out += e;
          continue;
        }
        if (d === '\n') this.line++;
        out += d;
      }
      return { t: 'string', v: out, line };
    }
    const start = this.pos;
    while (this.pos < s.length) {
      const d = s[this.pos]!;
      if (d === ' ' || d === '\t' || d === '\n' || d === '\r' || d === '#' || d === '"' || d === "'" || PUNCT.has(d))
        break;
      this.pos++;
    }
    const v = s.slice(start, this.pos);
    if (v.includes('\0')) this.fail(line, 'NUL byte in the text');
    return { t: 'word', v, line };
  }
}

function describe(t: Tok): string {
  switch (t.t) {
    case 'eof':
      return 'end of text';
    case 'string':
      return `string ${JSON.stringify(t.v.length > 40 ? `${t.v.slice(0, 40)}…` : t.v)}`;
    default:
      return JSON.stringify(t.v.length > 40 ? `${t.v.slice(0, 40)}…` : t.v);
  }
}

function scalar(lx: Lexer, t: Tok): LvmScalar {
  if (t.t === 'string') return t.v;
  if (t.t === 'word') {
    if (/^[+-]?\d+$/.test(t.v)) {
      const n = Number(t.v);
      if (!Number.isSafeInteger(n)) lx.fail(t.line, `number ${t.v} is too large`);
      return n;
    }
    if (/^[+-]?(\d+\.\d*|\.\d+)$/.test(t.v)) return Number(t.v);
    lx.fail(t.line, `expected a value, got ${describe(t)}`);
  }
  return lx.fail(t.line, `expected a value, got ${describe(t)}`);
}

const MAX_LIST = 1 << 20;

function parseItems(lx: Lexer, into: LvmSection, depth: number, closing: boolean): void {
  for (;;) {
    const t = lx.next();
    if (t.t === 'eof') {
      if (closing) lx.fail(t.line, `section "${into.name}" (line ${into.line}) is not closed: missing "}"`);
      return;
    }
    if (t.t === 'punct' && t.v === '}') {
      if (!closing) lx.fail(t.line, 'unexpected "}"');
      return;
    }
    if (t.t !== 'word') lx.fail(t.line, `expected a name, got ${describe(t)}`);
    const name = t.v;
    const op = lx.next();
    if (op.t === 'punct' && op.v === '{') {
      if (depth + 1 > MAX_NESTING) lx.fail(op.line, `sections nested deeper than ${MAX_NESTING}`);
      const sec: LvmSection = { name, line: t.line, values: new Map(), sections: new Map() };
      parseItems(lx, sec, depth + 1, true);
      if (into.sections.has(name) || into.values.has(name))
        lx.fail(t.line, `"${name}" is defined twice in "${into.name}"`);
      into.sections.set(name, sec);
    } else if (op.t === 'punct' && op.v === '=') {
      const v = lx.next();
      let value: LvmValue;
      if (v.t === 'punct' && v.v === '[') {
        const list: LvmScalar[] = [];
        let first = true;
        for (;;) {
          const u = lx.next();
          if (u.t === 'punct' && u.v === ']') break;
          if (!first) {
            if (!(u.t === 'punct' && u.v === ','))
              lx.fail(u.line, `expected "," or "]" in the list "${name}", got ${describe(u)}`);
            const w = lx.next();
            if (w.t === 'punct' && w.v === ']') break; // trailing comma
            list.push(scalar(lx, w));
          } else list.push(scalar(lx, u));
          first = false;
          if (list.length > MAX_LIST) lx.fail(u.line, `list "${name}" is too long`);
        }
        value = list;
      } else value = scalar(lx, v);
      if (into.values.has(name) || into.sections.has(name))
        lx.fail(t.line, `"${name}" is defined twice in "${into.name}"`);
      into.values.set(name, value);
    } else {
      lx.fail(op.line, `expected "=" or "{" after "${name}", got ${describe(op)}`);
    }
  }
}

/** Parses LVM2 metadata / config text. `what` names the text in errors ("disk.img: metadata text"). */
export function parseLvmText(text: string, what = 'LVM metadata text'): LvmSection {
  const lx = new Lexer(text, what);
  const top: LvmSection = { name: '', line: 0, values: new Map(), sections: new Map() };
  parseItems(lx, top, 0, false);
  return top;
}
