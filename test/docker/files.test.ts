/**
 * docker/files.ts reads a Docker file with one read into a reused 64 KiB buffer, and falls back to fstat and a whole
 * read for larger files: each branch, fed real files, directories and oversized input.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exists, readSmallFile, readSmallFileIfExists, readText, readTextIfExists } from '../../src/docker/files.js';
import { tmpDir } from '../support/cli.js';

const dir = tmpDir('dminspect-files-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const file = (name: string, bytes: Buffer | string): string => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, bytes);
  return p;
};

describe('reading small files', () => {
  it('a file that fits the buffer, and one larger than it, come back whole and byte-exact', () => {
    const small = file('small.json', '{"a":1}');
    expect(readText(small)).toBe('{"a":1}');
    const big = Buffer.alloc(200 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = 0x61 + (i % 26);
    const p = file('big.txt', big);
    expect(readSmallFile(p).equals(big)).toBe(true);
    expect(readText(p)).toBe(big.toString('utf8'));
    // the buffer is reused: an earlier result is a copy, not a view that a later read overwrites
    const first = readSmallFile(small);
    readSmallFile(p);
    expect(first.toString()).toBe('{"a":1}');
  });

  it('a directory is a one-line BAD_INPUT naming it', () => {
    const d = path.join(dir, 'sub');
    fs.mkdirSync(d);
    expect(() => readText(d)).toThrow(
      expect.objectContaining({ code: 'BAD_INPUT', message: `${d}: is a directory, expected a file` }),
    );
    expect(() => readSmallFileIfExists(d)).toThrow(/is a directory/);
  });

  it('a file over the bound is refused with its size, whether it fits the buffer or not', () => {
    const p = file('twenty', 'x'.repeat(20));
    expect(() => readSmallFile(p, 10)).toThrow(
      expect.objectContaining({
        code: 'BAD_INPUT',
        message: `${p}: file is 20 bytes, more than the 10 a Docker record can be`,
      }),
    );
    const q = file('large', Buffer.alloc(100 * 1024, 0x20));
    expect(() => readSmallFile(q, 70 * 1024)).toThrow(/file is 102400 bytes, more than the 71680/);
    expect(readSmallFile(q, 100 * 1024).length).toBe(100 * 1024);
  });

  it('a missing file is null for the IfExists readers and NOT_FOUND for the others', () => {
    const missing = path.join(dir, 'nope');
    expect(readTextIfExists(missing)).toBeNull();
    expect(readSmallFileIfExists(missing)).toBeNull();
    expect(() => readText(missing)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
  });
});

describe('exists', () => {
  it('is lstat: a file, a directory and a dangling symbolic link exist; a missing name, or one under a file, does not', () => {
    const f = file('present', 'x');
    expect(exists(f)).toBe(true);
    expect(exists(dir)).toBe(true);
    const link = path.join(dir, 'dangling');
    fs.symlinkSync(path.join(dir, 'no-target'), link);
    expect(exists(link)).toBe(true);
    expect(exists(path.join(dir, 'missing'))).toBe(false);
    expect(exists(path.join(f, 'under-a-file'))).toBe(false); // ENOTDIR: lstat still throws, and it is caught
  });
});
