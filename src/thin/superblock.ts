/**
 * The thin-pool superblock (block 0, and the held metadata-snapshot copy at `metadata_snap`).
 * Facts: kernel `struct thin_disk_superblock` (dm-thin-metadata.c); thin-provisioning-tools superblock.rs.
 */
import { DmiError } from '../errors.js';
import { LeCursor } from '../io/cursor.js';
import { verifyBlock } from './checksum.js';
import { decodeSmRoot, type SmRoot } from './space-map.js';

/** Bytes of a space map root inside the superblock (`SPACE_MAP_ROOT_SIZE`). */
const SM_ROOT_BYTES = 128;

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
  // struct thin_disk_superblock (dm-thin-metadata.c), in field order.
  const c = new LeCursor(b, where);
  c.u32('csum'); // checked by verifyBlock, once the magic says this is thin metadata
  const flags = c.u32('flags');
  c.skip(8, 'blocknr'); // checked by verifyBlock
  const uuid = c.bytes(16, 'uuid').toString('hex');
  const magic = c.u64Safe('magic');
  // Not thin metadata at all: say so before any other field is judged.
  if (magic !== THIN_MAGIC) {
    throw new DmiError('BAD_INPUT', `${where}: bad magic ${magic} (expected ${THIN_MAGIC}): not thin-pool metadata`, {
      block: blockNr,
    });
  }
  verifyBlock(b, blockNr, 'superblock', blockNr === 0 ? undefined : 'metadata snapshot');
  const version = c.u32('version');
  const time = c.u32('time');
  const transactionId = c.u64Safe('transaction id');
  const metadataSnap = c.u64Safe('metadata_snap');
  const dataSmRoot = c.bytes(SM_ROOT_BYTES, 'data space map root');
  const metadataSmRoot = c.bytes(SM_ROOT_BYTES, 'metadata space map root');
  const dataMappingRoot = c.u64Safe('data mapping root');
  const deviceDetailsRoot = c.u64Safe('device details root');
  const dataBlockSize = c.u32('data_block_size');
  const metadataBlockSize = c.u32('metadata_block_size');
  const metadataNrBlocks = c.u64Safe('metadata_nr_blocks');
  const compatFlags = c.u32('compat_flags');
  const compatRoFlags = c.u32('compat_ro_flags');
  const incompatFlags = c.u32('incompat_flags');

  if (version !== 1 && version !== 2) {
    throw new DmiError('UNSUPPORTED', `${where}: unsupported metadata version ${version} (known: 1, 2)`, {
      block: blockNr,
    });
  }
  if (incompatFlags !== 0) {
    throw new DmiError('UNSUPPORTED', `${where}: unsupported incompat flags 0x${incompatFlags.toString(16)}`, {
      block: blockNr,
    });
  }
  if (metadataBlockSize !== 8) {
    throw new DmiError('BAD_INPUT', `${where}: metadata block size ${metadataBlockSize} sectors (expected 8)`, {
      block: blockNr,
    });
  }
  if (
    dataBlockSize < MIN_DATA_BLOCK_SECTORS ||
    dataBlockSize > MAX_DATA_BLOCK_SECTORS ||
    dataBlockSize % MIN_DATA_BLOCK_SECTORS !== 0
  ) {
    throw new DmiError('BAD_INPUT', `${where}: bad data block size ${dataBlockSize} sectors`, { block: blockNr });
  }
  if (!snapshotCopy && (metadataNrBlocks < 1 || metadataNrBlocks > MAX_METADATA_BLOCKS)) {
    throw new DmiError(
      'BAD_INPUT',
      `${where}: bad metadata size ${metadataNrBlocks} blocks (at most ${MAX_METADATA_BLOCKS})`,
      { block: blockNr },
    );
  }
  return {
    blockNr,
    flags,
    needsCheck: (flags & NEEDS_CHECK_FLAG) !== 0,
    uuid,
    version,
    time,
    transactionId,
    metadataSnap,
    dataSpaceMapRoot: decodeSmRoot(dataSmRoot, 0, where, 'data space map root'),
    metadataSpaceMapRoot: decodeSmRoot(metadataSmRoot, 0, where, 'metadata space map root'),
    dataMappingRoot,
    deviceDetailsRoot,
    dataBlockSize,
    metadataBlockSize,
    metadataNrBlocks,
    compatFlags,
    compatRoFlags,
    incompatFlags,
  };
}
