/**
 * Device-mapper names Docker gives the pool and its thin devices (moby deviceset.go initDevmapper,
 * getPoolName, devInfo.Name) and where the pool name comes from: `--pool`, `dm.thinpooldev` in the daemon's
 * storage options, direct-lvm auto-setup (`setup-config.json`), or the stat of the driver home.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DmiError, fsError } from '../errors.js';
import { exists, isObject, readJson } from './files.js';

export type PoolNameSource = 'option' | 'daemon-config' | 'direct-lvm' | 'stat';

export interface Naming {
  /** `docker-MAJ:MIN-INO`: the prefix of every thin device name. */
  prefix: string;
  poolName: string;
  poolNameSource: PoolNameSource;
  /** The pool is not Docker's own loop-lvm pool (dm.thinpooldev or direct-lvm). */
  externalPool: boolean;
}

/** Docker decodes st_dev with the old 8:8(+12) encoding: major = (dev>>8)&0xfff, minor = (dev&0xff)|((dev>>12)&0xfff00). */
export function devicePrefix(dev: bigint, ino: bigint): string {
  const major = (dev >> 8n) & 0xfffn;
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xfff00n);
  return `docker-${major}:${minor}-${ino}`;
}

export function prefixFromStat(root: string): string {
  const home = path.join(root, 'devicemapper');
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(home, { bigint: true });
  } catch (e) {
    throw fsError(e, home, 'stat');
  }
  return devicePrefix(st.dev, st.ino);
}

/** `dm.thinpooldev` from a daemon.json's `storage-opts`, without `/dev/mapper/`. */
export function thinPoolDevFromDaemonConfig(file: string): string | null {
  if (!exists(file)) return null;
  const cfg = readJson(file);
  if (!isObject(cfg)) throw new DmiError('BAD_INPUT', `${file}: expected a JSON object`, { path: file });
  const opts = cfg['storage-opts'];
  if (opts === undefined) return null;
  if (!Array.isArray(opts)) throw new DmiError('BAD_INPUT', `${file}: "storage-opts" is not a list`, { path: file });
  for (const o of opts) {
    if (typeof o !== 'string') continue;
    const m = /^\s*dm\.thinpooldev\s*=\s*(.+?)\s*$/.exec(o);
    if (m?.[1]) return m[1].replace(/^\/dev\/mapper\//, '');
  }
  return null;
}

/** Docker's `data-root` (or the old `graph`) in a daemon.json, or null. */
export function dataRootFromDaemonConfig(file: string): string | null {
  if (!exists(file)) return null;
  const cfg = readJson(file);
  if (!isObject(cfg)) return null;
  const v = cfg['data-root'] ?? cfg.graph;
  return typeof v === 'string' ? v : null;
}

export interface NamingOptions {
  pool?: string | undefined;
  /** A daemon.json to read dm.thinpooldev from (null: none). */
  daemonConfig?: string | null | undefined;
}

export function resolveNaming(root: string, opts: NamingOptions = {}): Naming {
  const statPrefix = prefixFromStat(root);
  if (opts.pool) {
    const name = opts.pool.replace(/^\/dev\/mapper\//, '');
    // A Docker-made pool name carries the device prefix (from the original host's stat): use it for the devices too.
    const own = /^(docker-\d+:\d+-\d+)-pool$/.exec(name);
    return { prefix: own ? own[1]! : statPrefix, poolName: name, poolNameSource: 'option', externalPool: !own };
  }
  const prefix = statPrefix;
  if (opts.daemonConfig) {
    const p = thinPoolDevFromDaemonConfig(opts.daemonConfig);
    if (p) return { prefix, poolName: p, poolNameSource: 'daemon-config', externalPool: true };
  }
  if (exists(path.join(root, 'devicemapper', 'setup-config.json'))) {
    return { prefix, poolName: 'docker-thinpool', poolNameSource: 'direct-lvm', externalPool: true };
  }
  return { prefix, poolName: `${prefix}-pool`, poolNameSource: 'stat', externalPool: false };
}

/** `<prefix>-<hash>`, `<prefix>-base` for the base device. */
export function thinDeviceName(prefix: string, hash: string): string {
  return `${prefix}-${hash === '' ? 'base' : hash}`;
}
