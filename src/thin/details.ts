/**
 * Device details: the btree `device_details_root` maps thin device id → 24-byte disk_device_details
 * (`u64 mapped_blocks`, `u64 transaction_id`, `u32 creation_time`, `u32 snapshotted_time`).
 * Facts: kernel dm-thin-metadata.c `struct disk_device_details`; thin-provisioning-tools device_detail.rs.
 */
import { u64Safe as u64 } from '../io/cursor.js';

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

export function decodeDeviceDetails(devId: number, buf: Buffer, off: number, where: string): DeviceDetails {
  return {
    devId,
    mappedBlocks: u64(buf, off, where, `device ${devId} mapped_blocks`),
    transactionId: u64(buf, off + 8, where, `device ${devId} transaction_id`),
    creationTime: buf.readUInt32LE(off + 16),
    snapshottedTime: buf.readUInt32LE(off + 20),
  };
}
