/**
 * Block checksums: `csum = CRC32C_raw(seed 0xFFFFFFFF, bytes[4..4096)) XOR salt` (no final inversion;
 * with a standard crc32c that inverts at the end: `crc32c(bytes[4..]) ^ 0xFFFFFFFF ^ salt`).
 * Facts: kernel dm-block-manager.c `dm_bm_checksum` and the validators; thin-provisioning-tools checksum.rs.
 */
import { crc32c } from '../util/crc32c.js';
import { DmiError } from '../errors.js';

import { BLOCK_SIZE } from '../io/block-source.js';

export { BLOCK_SIZE };

/** Salt of each metadata block type. */
export const SALT = {
  superblock: 160774,
  btree: 121107,
  bitmap: 240779,
  index: 160478,
} as const;

export type BlockKind = keyof typeof SALT;

/** The checksum of a 4096-byte block before the salt is XOR-ed in. */
export function rawChecksum(block: Uint8Array): number {
  return (crc32c(block.subarray(4, BLOCK_SIZE)) ^ 0xffffffff) >>> 0;
}

/** The checksum a block of `kind` must store. */
export function blockChecksum(block: Uint8Array, kind: BlockKind): number {
  return (rawChecksum(block) ^ SALT[kind]) >>> 0;
}

/** The block type whose salt matches the stored checksum, or null (a debugging aid). */
export function identifyBlock(block: Uint8Array): BlockKind | null {
  const salt = (rawChecksum(block) ^ readU32(block, 0)) >>> 0;
  for (const k of Object.keys(SALT) as BlockKind[]) if (SALT[k] === salt) return k;
  return null;
}

function readU32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

const KIND_NAME: Record<BlockKind, string> = {
  superblock: 'superblock',
  btree: 'btree node',
  bitmap: 'space-map bitmap',
  index: 'space-map index',
};

/** Name used in messages: "btree node 12 (mapping tree of device 3)". */
export function blockName(kind: BlockKind, blockNr: number, what?: string): string {
  return `${KIND_NAME[kind]} ${blockNr}${what ? ` (${what})` : ''}`;
}

/**
 * Checks the checksum and the self block number (u64 at offset 8) of the block at `buf[0..4096)`,
 * which was read from block `blockNr`. Throws BAD_INPUT naming the block.
 */
export function verifyBlock(buf: Buffer, blockNr: number, kind: BlockKind, what?: string): void {
  const stored = buf.readUInt32LE(0);
  const computed = blockChecksum(buf, kind);
  if (stored !== computed) {
    const hint = identifyBlock(buf);
    throw new DmiError(
      'BAD_INPUT',
      `${blockName(kind, blockNr, what)}: checksum mismatch (stored 0x${stored.toString(16).padStart(8, '0')}, ` +
        `computed 0x${computed.toString(16).padStart(8, '0')}${hint && hint !== kind ? `; the block looks like a ${KIND_NAME[hint]}` : ''})`,
      { block: blockNr, kind },
    );
  }
  const lo = buf.readUInt32LE(8);
  const hi = buf.readUInt32LE(12);
  if (lo !== blockNr % 2 ** 32 || hi !== Math.floor(blockNr / 2 ** 32)) {
    throw new DmiError(
      'BAD_INPUT',
      `${blockName(kind, blockNr, what)}: block number mismatch (the block says it is block ${hi * 2 ** 32 + lo})`,
      { block: blockNr, kind },
    );
  }
}
