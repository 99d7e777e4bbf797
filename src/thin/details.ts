/**
 * Device details: the btree `device_details_root` maps thin device id → 24-byte disk_device_details
 * (`u64 mapped_blocks`, `u64 transaction_id`, `u32 creation_time`, `u32 snapshotted_time`).
 * Facts: kernel dm-thin-metadata.c `struct disk_device_details`; thin-provisioning-tools device_detail.rs.
 */
import { LeCursor, TWO32 } from '../io/cursor.js';

export const DEVICE_DETAILS_SIZE = 24;
/** Thin device ids are 24 bits (kernel dm-thin.c MAX_DEV_ID). */
export const MAX_THIN_DEVICE_ID = 0xffffff;

export interface DeviceDetails {
  devId: number;
  /** Maintained by the kernel; what thin_ls prints as MAPPED_BLOCKS. */
  mappedBlocks: number;
  /** Transaction id when the device was created. */
  transactionId: number;
  creationTime: number;
  snapshottedTime: number;
}

/**
 * The details at `buf[off, off + 24)`. `where` names the node in errors; a function is called only when there is one
 * (a pool's thousands of records then build no message strings).
 */
export function decodeDeviceDetails(
  devId: number,
  buf: Buffer,
  off: number,
  where: string | (() => string),
): DeviceDetails {
  // The common case read directly, in field order (no cursor, no field names): both u64 below 2^53, inside the buffer.
  if (off >= 0 && off + DEVICE_DETAILS_SIZE <= buf.length) {
    const mappedHi = buf.readUInt32LE(off + 4);
    const transactionHi = buf.readUInt32LE(off + 12);
    if (mappedHi <= 0x1fffff && transactionHi <= 0x1fffff) {
      return {
        devId,
        mappedBlocks: mappedHi * TWO32 + buf.readUInt32LE(off),
        transactionId: transactionHi * TWO32 + buf.readUInt32LE(off + 8),
        creationTime: buf.readUInt32LE(off + 16),
        snapshottedTime: buf.readUInt32LE(off + 20),
      };
    }
  }
  const c = new LeCursor(buf, typeof where === 'string' ? where : where(), off);
  const mappedBlocks = c.u64Safe(`device ${devId} mapped_blocks`);
  const transactionId = c.u64Safe(`device ${devId} transaction_id`);
  const creationTime = c.u32('creation_time');
  const snapshottedTime = c.u32('snapshotted_time');
  return { devId, mappedBlocks, transactionId, creationTime, snapshottedTime };
}
