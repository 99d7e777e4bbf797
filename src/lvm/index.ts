/**
 * lvm/ — an offline reader of LVM2 on-disk metadata (no Docker, no dm-thin, no processes, read-only).
 *
 *   scanImages(paths): LvmScan            PVs in whole images or MBR/GPT partitions, VGs (newest usable copy),
 *                                          problems (checksum fallbacks, missing PVs, truncation…)
 *   locateLv(scannedVg, lvName): LocatedLv  image byte ranges (path, offset, length) of an LV, in LV order
 *   parseLvmText / readVolumeGroup / mapLogicalVolume   the text format, the VG model, LV → PV byte pieces
 *   decodeLabel / decodeMdaHeader / readPartitionTable / calcCrc   the on-disk structures
 *   dmName / splitDmName                   `docker-thinpool` ⇄ VG docker, LV thinpool
 */
export { scanImages, locateLv, findVg, MAX_MDA_BYTES } from './scan.js';
export type {
  LvmScan,
  LvmProblem,
  LvmProblemKind,
  FoundPv,
  ScannedImage,
  ScannedVg,
  MetadataCopy,
  LocatedLv,
  LocatedExtent,
} from './scan.js';
export { parseLvmText, MAX_NESTING } from './text.js';
export type { LvmSection, LvmValue, LvmScalar } from './text.js';
export { readVolumeGroup, mapLogicalVolume, lvBytes, dmName, splitDmName, SECTOR } from './metadata.js';
export type { VolumeGroup, PhysicalVolume, LogicalVolume, Segment, StripeArea, LvPiece } from './metadata.js';
export { decodeLabel, formatUuid } from './label.js';
export type { PvLabel, DiskLocn } from './label.js';
export { decodeMdaHeader, textOfCopy, olderCopies, circularRanges, FMTT_MAGIC, MDA_HEADER_SIZE } from './mda.js';
export type { MdaHeader, RawLocn } from './mda.js';
export { readPartitionTable, LVM_GPT_TYPE, LVM_MBR_TYPE } from './partitions.js';
export type { Partition, PartitionTable } from './partitions.js';
export { calcCrc, INITIAL_CRC } from './crc.js';
export { ImageFile } from './image.js';
