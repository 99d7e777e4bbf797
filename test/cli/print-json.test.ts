// printJson writes JSON.stringify(value, null, 2) in pieces (issue 15: a 10,000-container listing is never one 5 MB
// string): the pieces joined as the CLI's output joins them are the same bytes, and a large array is not one piece.
import { describe, expect, it } from 'vitest';
import { printJson, type Out } from '../../src/cli/render.js';

/** What `main`'s output does with each piece: the text, and the line end it lacks. */
function captured(value: unknown): { text: string; pieces: number } {
  let text = '';
  let pieces = 0;
  const io: Out = {
    out: (s) => {
      pieces++;
      text += s.endsWith('\n') ? s : `${s}\n`;
    },
    err: () => {
      throw new Error('no stderr expected');
    },
  };
  printJson(io, value);
  return { text, pieces };
}

const row = (i: number) => ({
  id: i.toString(16).padStart(64, '0'),
  name: `c${i}`,
  image: i % 7 === 0 ? null : `app${i % 20}:latest`,
  nested: { list: [i, `x\ny "quoted" \u2028`], empty: [], none: {} },
  skipped: undefined,
  fn: () => i,
});

describe('printJson', () => {
  const cases: Array<[string, unknown]> = [
    [
      'a listing larger than one piece',
      { root: '/r', containers: Array.from({ length: 3000 }, (_, i) => row(i)), problems: [] },
    ],
    ['a large array as the first member', { list: Array.from({ length: 600 }, (_, i) => row(i)), after: 1 }],
    [
      'large arrays side by side',
      { a: Array.from({ length: 513 }, (_, i) => i), b: Array.from({ length: 257 }, (_, i) => [i]) },
    ],
    [
      'a large array with undefined and functions',
      { a: Array.from({ length: 700 }, (_, i) => (i % 3 ? undefined : () => i)) },
    ],
    ['a large array with dates (toJSON)', { a: Array.from({ length: 300 }, (_, i) => (i === 299 ? new Date(i) : i)) }],
    [
      'a large array with a key-dependent toJSON',
      { a: Array.from({ length: 300 }, () => ({ toJSON: (k: string) => k })) },
    ],
    ['empty arrays and objects', { a: [], b: {}, c: [[]], d: [{}] }],
    [
      'members that JSON leaves out, and undefined inside an array',
      { u: undefined, f: () => 1, s: Symbol('x'), arr: [undefined, () => 1, 1] },
    ],
    ['an object with no members left', { u: undefined }],
    ['an empty object', {}],
    ['an array at the top', [1, { a: [1, 2] }]],
    ['a primitive', 'text'],
    ['null', null],
    ['toJSON at the top and inside', { when: new Date(0), list: [new Date(1)], custom: { toJSON: () => [1, 2] } }],
    ['a date at the top', new Date(2)],
    ['a boxed string', Object('ab')],
    [
      'a class instance',
      new (class P {
        x = [1, 2];
      })(),
    ],
    ['an object without a prototype', Object.assign(Object.create(null), { k: [1, 'v'] })],
    ['unicode keys and values', { 'ключ "q"': ['∑', '\u0000\t'], '': [''] }],
  ];
  for (const [label, value] of cases)
    it(`writes JSON.stringify's bytes: ${label}`, () => {
      expect(captured(value).text).toBe(`${JSON.stringify(value, null, 2)}\n`);
    });

  it('writes a large listing in pieces of a few hundred elements, not whole', () => {
    const value = { root: '/r', containers: Array.from({ length: 3000 }, (_, i) => row(i)), problems: [] };
    const whole = JSON.stringify(value, null, 2).length;
    const sizes: number[] = [];
    printJson({ out: (s) => sizes.push(s.length), err: () => {} }, value);
    expect(sizes.length).toBeGreaterThanOrEqual(Math.ceil(3000 / 256));
    expect(Math.max(...sizes)).toBeLessThan(whole / 8);
    expect(captured({ a: [1] }).pieces).toBe(1);
  });
});
