/**
 * Read-only access to files under a Docker root. Every read opens the file O_RDONLY (and refuses a
 * symbolic link as the last component), bounds its size, and turns failures into one-line DmiErrors that
 * name the file. Nothing here ever writes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DmiError, fsError } from '../errors.js';

/** Docker's small JSON and id files are far below this; a larger file is hostile or not Docker's. */
export const MAX_SMALL_FILE = 16 * 1024 * 1024;

const O_READ = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0);

/** One buffer for every read of a small file: most Docker records fit, so a read is open, one read, close. */
const scratch = Buffer.allocUnsafe(64 * 1024);

/**
 * Reads a whole small file and hands its bytes, the first `length` of a buffer, to `take`, which must copy what it
 * keeps (the buffer is reused; no view of it is made per file: 30,000 reads in a listing).
 * Three system calls for a file that fits the scratch buffer (a short read of a regular file is its end); a larger
 * one is checked against `maxBytes` with fstat and read whole. A directory fails the read with EISDIR.
 */
function readWhole<T>(path: string, maxBytes: number, take: (bytes: Buffer, length: number) => T): T {
  let fd: number;
  try {
    fd = fs.openSync(path, O_READ);
  } catch (e) {
    throw fsError(e, path);
  }
  try {
    const n = fs.readSync(fd, scratch, 0, scratch.length, 0);
    if (n < scratch.length && n <= maxBytes) return take(scratch, n);
    const st = fs.fstatSync(fd);
    if (st.size > maxBytes) {
      throw new DmiError(
        'BAD_INPUT',
        `${path}: file is ${st.size} bytes, more than the ${maxBytes} a Docker record can be`,
        { path },
      );
    }
    const whole = fs.readFileSync(fd);
    return take(whole, whole.length);
  } catch (e) {
    throw fsError(e, path);
  } finally {
    fs.closeSync(fd);
  }
}

const copyBytes = (b: Buffer, n: number): Buffer => Buffer.from(b.subarray(0, n));
const utf8Text = (b: Buffer, n: number): string => b.toString('utf8', 0, n);

export function readSmallFile(path: string, maxBytes = MAX_SMALL_FILE): Buffer {
  return readWhole(path, maxBytes, copyBytes);
}

/** What `read` returns, or null when the file does not exist (one open instead of a stat and an open). */
function orNull<T>(read: () => T): T | null {
  try {
    return read();
  } catch (e) {
    if (e instanceof DmiError && e.code === 'NOT_FOUND') return null;
    throw e;
  }
}

/** The file's content, or null when it does not exist. */
export function readSmallFileIfExists(path: string): Buffer | null {
  return orNull(() => readSmallFile(path));
}

/**
 * Whether a file contains `needle`, reading into a reused buffer (a fast pre-filter over thousands of
 * small files). Unreadable or missing files answer false; large files are read whole.
 */
export function fileContains(path: string, needle: Buffer): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path, O_READ);
  } catch {
    return false;
  }
  try {
    const n = fs.readSync(fd, scratch, 0, scratch.length, 0);
    if (n < scratch.length) return scratch.subarray(0, n).indexOf(needle) >= 0;
    return readSmallFile(path).indexOf(needle) >= 0;
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/** The file's text, or null when it does not exist. */
export function readTextIfExists(path: string): string | null {
  return orNull(() => readText(path));
}

export function readText(path: string): string {
  return readWhole(path, MAX_SMALL_FILE, utf8Text);
}

/** Reads and parses a JSON file; corrupt or truncated JSON is a BAD_INPUT error naming the file. */
export function readJson(path: string): unknown {
  const text = readText(path);
  return parseJson(text, path);
}

export function parseJson(text: string, path: string): unknown {
  if (text.trim() === '') throw new DmiError('BAD_INPUT', `${path}: empty file, expected JSON`, { path });
  try {
    return JSON.parse(text);
  } catch (e) {
    const why = (e as Error).message.replace(/\s+/g, ' ');
    throw new DmiError('BAD_INPUT', `${path}: invalid JSON (${why})`, { path });
  }
}

/**
 * Whether `path` exists (not following a last symbolic link). A missing file throws nothing inside: an exception per
 * name, as in a look-up by name among 10,000 containers, costs more than the lstat.
 */
export function exists(path: string): boolean {
  try {
    return fs.lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}

export function isDirectory(path: string): boolean {
  try {
    return fs.statSync(path).isDirectory();
  } catch {
    return false;
  }
}

let joinedRoot = '';
const joined = new Map<string, string>();

/**
 * `path.join(root, rel)`, remembered for the last root: a listing of 10,000 containers asks for the same few
 * directories (containers/, layerdb/, metadata/) three times per container.
 */
export function underRoot(root: string, rel: string): string {
  if (root !== joinedRoot) {
    joined.clear();
    joinedRoot = root;
  }
  let p = joined.get(rel);
  if (p === undefined) {
    p = path.join(root, rel);
    joined.set(rel, p);
  }
  return p;
}

/** Orders names as Node's readdir does (libuv sorts by strcmp); Bun returns the kernel's order. */
export const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** What `read` lists of directory `path`: [] when it does not exist, a one-line DmiError when it cannot be listed. */
function listing<T>(path: string, read: () => T[]): T[] {
  try {
    return read();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fsError(e, path, 'list');
  }
}

/** Directory entries sorted by name, or [] when the directory does not exist. Other failures are errors. */
export function listDir(path: string): fs.Dirent[] {
  return listing(path, () => fs.readdirSync(path, { withFileTypes: true })).sort((a, b) => byName(a.name, b.name));
}

/**
 * The names in a directory that `accept` takes and that are directories themselves (not through a symbolic link, as
 * listDir's entries tell), sorted; [] when the directory does not exist (as listDir). Reads the names alone: a lookup by id prefix
 * among 10,000 containers makes no 10,000 entry objects and lstats only the few names accepted.
 */
export function listSubdirs(path: string, accept: (name: string) => boolean): string[] {
  return listing(path, () => fs.readdirSync(path))
    .filter((n) => accept(n) && fs.lstatSync(`${path}/${n}`, { throwIfNoEntry: false })?.isDirectory())
    .sort(byName);
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads a one-line id file (mount-id, cache-id, parent...): the content without surrounding whitespace. */
export function readIdFile(path: string): string {
  return readText(path).trim();
}
