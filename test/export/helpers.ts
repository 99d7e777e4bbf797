/**
 * Fixtures for the export tests, all real: filesystems made with mkfs and written through a loop mount,
 * their non-zero 64 KiB blocks scattered (fragmented, out of order) over a sparse pool data file, the
 * mapping written as pool metadata by thin_restore, and a Docker root whose container records carry the
 * thin ids and sizes.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildV2Root, sha } from '../../scripts/docker-root-builder.js';
import { hasThinTools, poolXml, prng, SKIP_MESSAGE, type DeviceSpec, type MappingSpec } from '../thin/helpers.js';
import { cli, hashFile, type CliResult } from '../support/cli.js';
import { skipReason } from '../support/tools.js';

export const BS = 64 * 1024;
const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Why the real-device tests cannot run here, or null. */
export const SKIP_REASON: string | null = skipReason(
  !isRoot
    ? 'not root: the export tests make filesystems and loop-mount them (run as root)'
    : !hasThinTools
      ? SKIP_MESSAGE
      : !has('mkfs.xfs', ['-V']) || !has('mkfs.ext4', ['-V'])
        ? 'mkfs.xfs / mkfs.ext4 (xfsprogs, e2fsprogs) are not installed'
        : !has('losetup', ['--version'])
          ? 'losetup is not installed'
          : null,
);
if (SKIP_REASON) console.warn(`skipping export tests: ${SKIP_REASON}`);

export function sh(
  cmd: string,
  args: string[],
  opts: { allowFail?: boolean } = {},
): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** sha256 of a file, streamed (the project's one test helper for it). */
export const sha256File = hashFile;

/** sha256 of every regular file under `dir` (the evidence), streamed. */
export function evidenceDigest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out[path.relative(dir, p)] = `${fs.statSync(p).size}:${sha256File(p)}`;
    }
  };
  walk(dir);
  return out;
}

/** Indexes of the 64 KiB blocks of `file` that hold a non-zero byte. */
export function nonZeroBlocks(file: string): number[] {
  const out: number[] = [];
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(BS);
  const zero = Buffer.alloc(BS);
  try {
    for (let i = 0; ; i++) {
      const n = fs.readSync(fd, buf, 0, BS, i * BS);
      if (n === 0) break;
      if (!buf.subarray(0, n).equals(zero.subarray(0, n))) out.push(i);
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

export interface FsImage {
  fsType: 'xfs' | 'ext4';
  file: string;
  size: number;
  sha256: string;
  hello: string;
  id: string;
  blocks: number[];
}

/** mkfs on a sparse file, loop-mount it, write `rootfs/hello.txt` and `id` as Docker does, unmount. */
export function makeFsImage(dir: string, fsType: 'xfs' | 'ext4', size: number, id: string, hello: string): FsImage {
  const file = path.join(dir, `${fsType}.img`);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  if (fsType === 'xfs') sh('mkfs.xfs', ['-q', file]);
  else sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', file]);
  const mnt = fs.mkdtempSync(path.join(dir, 'mnt-'));
  sh('mount', ['-o', 'loop', file, mnt]);
  try {
    fs.mkdirSync(path.join(mnt, 'rootfs', 'etc'), { recursive: true });
    fs.writeFileSync(path.join(mnt, 'id'), id);
    fs.writeFileSync(path.join(mnt, 'rootfs', 'hello.txt'), hello);
    // Some bulk so files span several blocks (deterministic bytes).
    const rnd = prng(fsType === 'xfs' ? 7 : 8);
    const big = Buffer.alloc(3 * BS + 1234);
    for (let i = 0; i < big.length; i++) big[i] = Math.floor(rnd() * 256);
    fs.writeFileSync(path.join(mnt, 'rootfs', 'etc', 'blob.bin'), big);
  } finally {
    sh('umount', [mnt]);
    fs.rmdirSync(mnt);
  }
  return { fsType, file, size, sha256: sha256File(file), hello, id, blocks: nonZeroBlocks(file) };
}

/**
 * Splits `blocks` (sorted virtual blocks) into pieces of 1..4 consecutive blocks and gives each piece a slot
 * of 4 data blocks chosen at random from `slots` (so data placement is fragmented and out of order).
 */
export function scatter(blocks: number[], slots: number[], rnd: () => number): MappingSpec[] {
  const out: MappingSpec[] = [];
  let i = 0;
  while (i < blocks.length) {
    let len = 1;
    const want = 1 + Math.floor(rnd() * 4);
    while (len < want && i + len < blocks.length && blocks[i + len] === blocks[i]! + len) len++;
    const slot = slots.pop();
    if (slot === undefined) throw new Error('out of data slots');
    out.push({ v: blocks[i]!, d: slot * 4, len });
    i += len;
  }
  return out;
}

export interface Fixture {
  dir: string;
  root: string;
  metadata: string;
  data: string;
  /** Pool metadata XML as written. */
  xml: string;
  nrDataBlocks: number;
  web: { name: string; id: string; mountId: string; deviceId: number; fs: FsImage; mappings: MappingSpec[] };
  db: { name: string; id: string; mountId: string; deviceId: number; fs: FsImage; mappings: MappingSpec[] };
}

function shuffle<T>(xs: T[], rnd: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/**
 * The fixture: Docker root with containers `web` (xfs, 512 MiB) and `db` (ext4, 64 MiB); their filesystems'
 * non-zero blocks in `devicemapper/devicemapper/data`, the mapping in `devicemapper/devicemapper/metadata`.
 */
export function buildFixture(base = fs.mkdtempSync(path.join(os.tmpdir(), 'dminspect-export-'))): Fixture {
  const work = path.join(base, 'work');
  fs.mkdirSync(work, { recursive: true });
  const root = path.join(base, 'docker');
  const built = buildV2Root(root, {
    images: [{ name: 'busybox:latest', layers: ['b'] }],
    containers: [
      { name: 'web', image: 'busybox:latest', state: 'exited' },
      { name: 'db', image: 'busybox:latest', state: 'exited' },
    ],
    fs: 'xfs',
  });
  const cont = (name: string) => built.containers.find((c: any) => c.name === name);
  const webC = cont('web');
  const dbC = cont('db');
  const xfs = makeFsImage(work, 'xfs', 512 * 1024 * 1024, webC.mountId, 'hello from web\n');
  const ext4 = makeFsImage(work, 'ext4', 64 * 1024 * 1024, dbC.mountId, 'hello from db\n');

  const rnd = prng(2024);
  const total = xfs.blocks.length + ext4.blocks.length;
  const nrSlots = total + 16;
  const slots = shuffle([...Array(nrSlots).keys()], rnd);
  const webMaps = scatter(xfs.blocks, slots, rnd);
  const dbMaps = scatter(ext4.blocks, slots, rnd);
  const nrDataBlocks = nrSlots * 4 + 8;
  const webId = built.devices.get(webC.mountId).device_id as number;
  const dbId = built.devices.get(dbC.mountId).device_id as number;

  // The data file: each piece's blocks copied to its data blocks; the rest stays a hole.
  const dm = path.join(root, 'devicemapper', 'devicemapper');
  const data = path.join(dm, 'data');
  const dfd = fs.openSync(data, 'w');
  fs.ftruncateSync(dfd, nrDataBlocks * BS);
  const place = (img: string, maps: MappingSpec[]) => {
    const ifd = fs.openSync(img, 'r');
    const buf = Buffer.alloc(BS);
    for (const m of maps) {
      for (let k = 0; k < (m.len ?? 1); k++) {
        fs.readSync(ifd, buf, 0, BS, (m.v + k) * BS);
        fs.writeSync(dfd, buf, 0, BS, (m.d + k) * BS);
      }
    }
    fs.closeSync(ifd);
  };
  place(xfs.file, webMaps);
  place(ext4.file, dbMaps);
  fs.closeSync(dfd);

  const devices: DeviceSpec[] = [
    { id: 1, mappings: [] },
    { id: webId, mappings: webMaps },
    { id: dbId, mappings: dbMaps },
  ];
  const xml = poolXml({ nrDataBlocks, time: 1, transaction: built.transactionId, devices });
  const metadata = path.join(dm, 'metadata');
  const xmlFile = path.join(work, 'pool.xml');
  fs.writeFileSync(xmlFile, xml);
  fs.writeFileSync(metadata, '');
  fs.truncateSync(metadata, 8 * 1024 * 1024);
  sh('thin_restore', ['-i', xmlFile, '-o', metadata]);

  // Docker's records: the containers' device sizes are their filesystems' sizes.
  const setSize = (mountId: string, size: number) => {
    const f = path.join(root, 'devicemapper', 'metadata', mountId);
    fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), size }));
  };
  setSize(webC.mountId, xfs.size);
  setSize(dbC.mountId, ext4.size);
  return {
    dir: base,
    root,
    metadata,
    data,
    xml,
    nrDataBlocks,
    web: { name: 'web', id: webC.id, mountId: webC.mountId, deviceId: webId, fs: xfs, mappings: webMaps },
    db: { name: 'db', id: dbC.id, mountId: dbC.mountId, deviceId: dbId, fs: ext4, mappings: dbMaps },
  };
}

export { sha };

/** Runs the CLI in-process (main()). */
export async function run(...args: string[]): Promise<CliResult> {
  return cli(...args);
}

/** Loop devices backed by `file` (from losetup). */
export function loopsOf(file: string): string[] {
  const r = sh('losetup', ['-j', file], { allowFail: true });
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[0]!);
}

export function mountedAt(dir: string): boolean {
  const mi = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  return mi.split('\n').some((l) => l.split(' ')[4] === dir);
}
