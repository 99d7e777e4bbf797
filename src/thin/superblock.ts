/**
 * The thin-pool superblock (block 0, and the held metadata-snapshot copy at `metadata_snap`).
 * Facts: kernel `struct thin_disk_superblock` (dm-thin-metadata.c); thin-provisioning-tools superblock.rs.
 */
import { DmiError } from '../errors.js';
import { u64 } from './bytes.js';
import { verifyBlock } from './checksum.js';
import { decodeSmRoot, type SmRoot } from './space-map.js';

export const THIN_MAGIC = 27022010;
export const NEEDS_CHECK_FLAG = 1;
/** Largest metadata device the format can describe: 255 bitmaps of 16320 blocks. */
export const MAX_METADATA_BLOCKS = 255 * 16320;
export const MIN_DATA_BLOCK_SECTORS = 128;
export const MAX_DATA_BLOCK_SECTORS = 2097152;

export interface Superblock {
  /** Block this superblock was read from (0, or the metadata snapshot's block). */
  blockNr: number;
  flags: number;
  needsCheck: boolean;
  /** 32 hex digits (the kernel writes zeros). */
  uuid: string;
  version: number;
  time: number;
  transactionId: number;
  /** Block of the held metadata snapshot, 0 = none. */
  metadataSnap: number;
  dataSpaceMapRoot: SmRoot;
  metadataSpaceMapRoot: SmRoot;
  dataMappingRoot: number;
  deviceDetailsRoot: number;
  /** Data block size in 512-byte sectors. */
  dataBlockSize: number;
  metadataBlockSize: number;
  metadataNrBlocks: number;
  compatFlags: number;
  compatRoFlags: number;
  incompatFlags: number;
}

/**
 * Decodes and checks the superblock in `buf[off..off+4096)` read from block `blockNr`: checksum,
 * block number, magic, version (1 or 2), block sizes, incompat flags, metadata size.
 * A held snapshot copy has zeroed space-map roots; pass `snapshotCopy` to accept that.
 */
export function decodeSuperblock(buf: Buffer, off = 0, blockNr = 0, snapshotCopy = false): Superblock {
  const b = buf.subarray(off, off + 4096);
  const where = blockNr === 0 ? 'superblock' : `metadata snapshot superblock ${blockNr}`;
  if (b.length < 4096) throw new DmiError('BAD_INPUT', `${where}: truncated (${b.length} bytes)`);
  const magic = u64(b, 32, where, 'magic');
  if (magic !== THIN_MAGIC) {
    throw new DmiError('BAD_INPUT', `${where}: bad magic ${magic} (expected ${THIN_MAGIC}): not thin-pool metadata`, { block: blockNr });
  }
  verifyBlock(b, blockNr, 'superblock', blockNr === 0 ? undefined : 'metadata snapshot');
  const version = b.readUInt32LE(40);
  if (version !== 1 && version !== 2) {
    throw new DmiError('UNSUPPORTED', `${where}: unsupported metadata version ${version} (known: 1, 2)`, { block: blockNr });
  }
  const incompatFlags = b.readUInt32LE(360);
  if (incompatFlags !== 0) {
    throw new DmiError('UNSUPPORTED', `${where}: unsupported incompat flags 0x${incompatFlags.toString(16)}`, { block: blockNr });
  }
  const metadataBlockSize = b.readUInt32LE(340);
  if (metadataBlockSize !== 8) {
    throw new DmiError('BAD_INPUT', `${where}: metadata block size ${metadataBlockSize} sectors (expected 8)`, { block: blockNr });
  }
  const dataBlockSize = b.readUInt32LE(336);
  if (dataBlockSize < MIN_DATA_BLOCK_SECTORS || dataBlockSize > MAX_DATA_BLOCK_SECTORS || dataBlockSize % MIN_DATA_BLOCK_SECTORS !== 0) {
    throw new DmiError('BAD_INPUT', `${where}: bad data block size ${dataBlockSize} sectors`, { block: blockNr });
  }
  const metadataNrBlocks = u64(b, 344, where, 'metadata_nr_blocks');
  if (!snapshotCopy && (metadataNrBlocks < 1 || metadataNrBlocks > MAX_METADATA_BLOCKS)) {
    throw new DmiError('BAD_INPUT', `${where}: bad metadata size ${metadataNrBlocks} blocks (at most ${MAX_METADATA_BLOCKS})`, { block: blockNr });
  }
  const flags = b.readUInt32LE(4);
  return {
    blockNr,
    flags,
    needsCheck: (flags & NEEDS_CHECK_FLAG) !== 0,
    uuid: b.subarray(16, 32).toString('hex'),
    version,
    time: b.readUInt32LE(44),
    transactionId: u64(b, 48, where, 'transaction id'),
    metadataSnap: u64(b, 56, where, 'metadata_snap'),
    dataSpaceMapRoot: decodeSmRoot(b, 64, where, 'data space map root'),
    metadataSpaceMapRoot: decodeSmRoot(b, 192, where, 'metadata space map root'),
    dataMappingRoot: u64(b, 320, where, 'data mapping root'),
    deviceDetailsRoot: u64(b, 328, where, 'device details root'),
    dataBlockSize,
    metadataBlockSize,
    metadataNrBlocks,
    compatFlags: b.readUInt32LE(352),
    compatRoFlags: b.readUInt32LE(356),
    incompatFlags,
  };
}
