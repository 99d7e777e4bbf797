/**
 * Docker's devicemapper records: `devicemapper/metadata/<hash>` (one JSON per thin device),
 * `metadata/base`, `deviceset-metadata`, `transaction-metadata`, and the pre-1.4 single `devicemapper/json`.
 * Facts: moby daemon/graphdriver/devmapper/deviceset.go (devInfo, DeviceSet, transaction).
 */
import * as path from 'node:path';
import { DmiError, isDmiError } from '../errors.js';
import { byName, exists, isObject, listDir, parseJson, readJson, readText, underRoot } from './files.js';
import { isSafeName } from './ids.js';
import { MAX_THIN_DEVICE_ID } from '../thin/details.js';

export interface DeviceRecord {
  /** Device hash: the metadata file name; "" for the base device (file `base`). */
  hash: string;
  deviceId: number;
  /** Virtual size in bytes (the only size record: the pool keeps none). */
  size: number;
  transactionId: number;
  initialized: boolean;
  /** `true`: deferred deletion pending. `null`: the key is absent (files older than Docker 1.9). */
  deleted: boolean | null;
  /** Where the record came from. */
  file: string;
}

export interface DeviceSetMetadata {
  nextDeviceId: number | null;
  baseDeviceUuid: string | null;
  baseDeviceFilesystem: string | null;
}

export interface TransactionMetadata {
  openTransactionId: number;
  deviceHash: string;
  deviceId: number;
}

export interface Problem {
  file: string;
  message: string;
}

export interface RecordSet {
  devices: DeviceRecord[];
  /** Files that could not be read as records: reported, then skipped. */
  problems: Problem[];
  /** Stale `.tmp*` files left by an interrupted atomic write. */
  tmpFiles: string[];
  deviceSet: DeviceSetMetadata | null;
  transaction: TransactionMetadata | null;
  /** Records came from the pre-1.4 `devicemapper/json` file. */
  legacyJson: boolean;
}

export function metadataDir(root: string): string {
  return underRoot(root, 'devicemapper/metadata');
}

/** The file name of a device's record: `base` for the base device (empty hash). */
export function recordFileName(hash: string): string {
  return hash === '' ? 'base' : hash;
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Validates one devInfo object (from a metadata file or the legacy json). */
export function parseDeviceRecord(obj: unknown, hash: string, file: string): DeviceRecord {
  if (!isObject(obj)) throw new DmiError('BAD_INPUT', `${file}: expected a JSON object`, { path: file });
  const bad = (msg: string) => new DmiError('BAD_INPUT', `${file}: ${msg}`, { path: file });
  const id = obj.device_id;
  if (id === undefined) throw bad('missing "device_id"');
  if (typeof id !== 'number' || !Number.isInteger(id))
    throw bad(`"device_id" is ${JSON.stringify(id)}, not an integer`);
  if (id < 0 || id > MAX_THIN_DEVICE_ID)
    throw bad(`"device_id" ${id} is outside the 24-bit range 0..${MAX_THIN_DEVICE_ID}`);
  const size = obj.size;
  if (size === undefined) throw bad('missing "size"');
  if (!isUint(size)) throw bad(`"size" is ${JSON.stringify(size)}, not a non-negative integer number of bytes`);
  const txn = obj.transaction_id ?? 0;
  if (!isUint(txn)) throw bad(`"transaction_id" is ${JSON.stringify(txn)}, not a non-negative integer`);
  const init = obj.initialized ?? false;
  if (typeof init !== 'boolean') throw bad(`"initialized" is ${JSON.stringify(init)}, not a boolean`);
  const del = obj.deleted;
  if (del !== undefined && typeof del !== 'boolean') throw bad(`"deleted" is ${JSON.stringify(del)}, not a boolean`);
  return {
    hash,
    deviceId: id,
    size,
    transactionId: txn,
    initialized: init,
    deleted: del === undefined ? null : del,
    file,
  };
}

/** Reads one device record by hash ("" or "base" for the base device). */
export function readDeviceRecord(root: string, hash: string): DeviceRecord {
  const name = recordFileName(hash);
  if (!isSafeName(name)) throw new DmiError('USAGE', `invalid device hash ${JSON.stringify(hash)}`);
  const file = `${metadataDir(root)}/${name}`; // a checked name: no normalizing needed
  return parseDeviceRecord(readJson(file), hash === 'base' ? '' : hash, file);
}

function skipped(name: string): boolean {
  return (
    name.startsWith('.') ||
    name.endsWith('.migrated') ||
    name === 'deviceset-metadata' ||
    name === 'transaction-metadata'
  );
}

export function readDeviceSetMetadata(root: string): DeviceSetMetadata | null {
  const file = path.join(metadataDir(root), 'deviceset-metadata');
  if (!exists(file)) return null;
  const obj = readJson(file);
  if (!isObject(obj)) throw new DmiError('BAD_INPUT', `${file}: expected a JSON object`, { path: file });
  const next = obj.next_device_id;
  if (next !== undefined && !isUint(next))
    throw new DmiError(
      'BAD_INPUT',
      `${file}: "next_device_id" is ${JSON.stringify(next)}, not a non-negative integer`,
      { path: file },
    );
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  return {
    nextDeviceId: next ?? null,
    baseDeviceUuid: str(obj.BaseDeviceUUID),
    baseDeviceFilesystem: str(obj.BaseDeviceFilesystem),
  };
}

export function readTransactionMetadata(root: string): TransactionMetadata | null {
  const file = path.join(metadataDir(root), 'transaction-metadata');
  if (!exists(file)) return null;
  const obj = readJson(file);
  if (!isObject(obj)) throw new DmiError('BAD_INPUT', `${file}: expected a JSON object`, { path: file });
  const open = obj.open_transaction_id;
  const id = obj.device_id ?? 0;
  if (!isUint(open))
    throw new DmiError(
      'BAD_INPUT',
      `${file}: "open_transaction_id" is ${JSON.stringify(open)}, not a non-negative integer`,
      { path: file },
    );
  if (!isUint(id))
    throw new DmiError('BAD_INPUT', `${file}: "device_id" is ${JSON.stringify(id)}, not a non-negative integer`, {
      path: file,
    });
  return {
    openTransactionId: open,
    deviceHash: typeof obj.device_hash === 'string' ? obj.device_hash : '',
    deviceId: id,
  };
}

/** Reads every device record, the pool-wide files and the stale temp files. Bad records become problems. */
export function readRecordSet(root: string): RecordSet {
  const dir = metadataDir(root);
  const devices: DeviceRecord[] = [];
  const problems: Problem[] = [];
  const tmpFiles: string[] = [];
  const byHash = new Map<string, DeviceRecord>();

  const keep = (fn: () => void, file: string) => {
    try {
      fn();
    } catch (e) {
      if (!isDmiError(e)) throw e;
      problems.push({ file, message: e.message });
    }
  };

  for (const ent of listDir(dir)) {
    const name = ent.name;
    if (name.startsWith('.tmp')) {
      tmpFiles.push(path.join(dir, name));
      continue;
    }
    if (ent.isDirectory() || skipped(name)) continue;
    const file = path.join(dir, name);
    keep(() => {
      const rec = parseDeviceRecord(readJson(file), name === 'base' ? '' : name, file);
      byHash.set(rec.hash, rec);
      devices.push(rec);
    }, file);
  }

  // Pre-1.4 layout: every device in devicemapper/json. Docker migrates it at start and renames it
  // `json.migrated`; a file still named `json` has not been migrated and is the record set.
  let legacyJson = false;
  const legacy = path.join(root, 'devicemapper', 'json');
  if (exists(legacy)) {
    keep(() => {
      const obj = parseJson(readText(legacy), legacy);
      if (!isObject(obj) || !isObject(obj.Devices))
        throw new DmiError('BAD_INPUT', `${legacy}: expected {"Devices": {...}}`, { path: legacy });
      legacyJson = true;
      for (const [hash, info] of Object.entries(obj.Devices)) {
        if (byHash.has(hash)) continue;
        keep(() => {
          const rec = parseDeviceRecord(info, hash, `${legacy}#${hash === '' ? 'base' : hash}`);
          byHash.set(hash, rec);
          devices.push(rec);
        }, `${legacy}#${hash}`);
      }
    }, legacy);
  }

  let deviceSet: DeviceSetMetadata | null = null;
  let transaction: TransactionMetadata | null = null;
  keep(() => (deviceSet = readDeviceSetMetadata(root)), path.join(dir, 'deviceset-metadata'));
  keep(() => (transaction = readTransactionMetadata(root)), path.join(dir, 'transaction-metadata'));

  devices.sort((a, b) => a.deviceId - b.deviceId || byName(a.hash, b.hash));
  return { devices, problems, tmpFiles, deviceSet, transaction, legacyJson };
}
