/**
 * Container ids by prefix (`container <prefix>`) read the directory's names alone and lstat the few that match
 * (docker/files.ts listSubdirs); the full listing reads typed entries. Both must agree on what a container directory
 * is: a directory named by 64 hex digits, not a file, not a symbolic link, not another name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listContainerIds } from '../../src/docker/containers.js';
import { DmiError } from '../../src/errors.js';
import { tmpDir } from '../support/cli.js';

const root = tmpDir('dminspect-container-ids-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const hex = (lead: string, fill: string): string => (lead + fill.repeat(64)).slice(0, 64);

describe('listContainerIds', () => {
  const dirs = [hex('ab', '1'), hex('ab', '2'), hex('abc', '3'), hex('f', '4')];
  const c = path.join(root, 'containers');
  fs.mkdirSync(c);
  for (const d of dirs) fs.mkdirSync(path.join(c, d));
  fs.writeFileSync(path.join(c, hex('ab', '5')), 'a file named like a container');
  fs.symlinkSync(path.join(c, dirs[0]!), path.join(c, hex('ab', '6')));
  fs.mkdirSync(path.join(c, 'ab-not-an-id'));
  fs.mkdirSync(path.join(c, hex('AB', '7'))); // upper case: not Docker's

  it('a prefix lists what the full listing lists with that prefix, sorted', () => {
    const all = listContainerIds(root);
    expect(all).toEqual([...dirs].sort());
    for (const prefix of ['a', 'ab', 'abc', 'f', dirs[1]!, 'e'])
      expect(listContainerIds(root, prefix)).toEqual(all.filter((id) => id.startsWith(prefix)));
  });

  it('a root without containers/ has none, by prefix or not', () => {
    const empty = tmpDir('dminspect-no-containers-');
    try {
      expect(listContainerIds(empty)).toEqual([]);
      expect(listContainerIds(empty, 'ab')).toEqual([]);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it('a containers/ that cannot be listed is the same one-line error by prefix or not', () => {
    const bad = tmpDir('dminspect-containers-file-');
    try {
      fs.writeFileSync(path.join(bad, 'containers'), 'not a directory');
      const errorOf = (f: () => unknown): unknown => {
        try {
          f();
        } catch (e) {
          return e;
        }
        return null;
      };
      const full = errorOf(() => listContainerIds(bad));
      const byPrefix = errorOf(() => listContainerIds(bad, 'ab'));
      expect(full).toBeInstanceOf(DmiError);
      expect((full as DmiError).message).toBe(`${path.join(bad, 'containers')}: not a directory`);
      expect(byPrefix).toEqual(full);
      expect((byPrefix as DmiError).message).toBe((full as DmiError).message);
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });
});
