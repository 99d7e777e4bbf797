/**
 * thin/ — an offline reader of dm-thin pool metadata (no Docker, no processes, read-only).
 *
 * Public API:
 *   openPool(metadataPath, { metadataSnap?, offset?, length?, chunkBlocks?, cacheBytes? }): ThinPool
 *     Opens the file or block device read-only (a byte range of it with offset/length) and checks the
 *     superblock. metadataSnap: read the held metadata snapshot's trees (NOT_FOUND if none is held).
 *   pool.superblock / pool.liveSuperblock: Superblock
 *   pool.dataBlockSize (= dataBlockSectors, 512-byte sectors), pool.dataBlockBytes, pool.dataNrBlocks,
 *   pool.metadataNrBlocks: number
 *   pool.devices(): Map<devId, DeviceDetails>          mappedBlocks, transactionId, creationTime, snapshottedTime
 *   pool.usage(): Map<devId, DeviceUsage>              { mapped, exclusive, shared } in data blocks, as thin_ls
 *   pool.spaceMaps(): { data, metadata: SpaceMapUsage } nrBlocks, nrAllocated, used (= bitmaps), free, ...
 *   pool.mappingRuns(devId): Generator<MappingRun>     { vblock, dblock, length } coalesced, vblock order
 *   pool.highestMappedBlock(devId): number | null
 *   pool.maxDeviceId(): number | null; pool.nextFreeDeviceId(from = 0): number | null
 *   pool.dataRefCount(dataBlock): number               data space map reference count
 *   pool.stats: { blocksVerified, reads, bytesRead }; pool.usageStats (nodes, sharedNodes, mappings)
 *   pool.rawBlock(n): Buffer                           block n as stored, unverified (for whole-device scans)
 *   pool.close()
 *
 * Stale metadata (stale.ts): scanStale(pool, { onProgress?, walkBudget? }) — one pass over every metadata block:
 * deleted devices (ids the live pool does not have) with every intact version of their mapping tree, details
 * records, unattributed trees; buildLiveIndex(pool, devices) + classifyBlocks(version, createdAt, index): each
 * mapping's data block shared / free / reused now; versionRuns(mappings) for the exporter (copyThinDevice `runs`).
 *
 * Errors are DmiError: BAD_INPUT for corrupt or hostile metadata (the message names the block),
 * NOT_FOUND (missing file, unknown device, no metadata snapshot), UNSUPPORTED (unknown version or
 * incompat flags), PERMISSION / IO from the file system.
 *
 * The decoders (decodeSuperblock, decodeNodeHeader, decodeDeviceDetails, decodeSmRoot,
 * decodeIndexEntry, countBitmap, ...) take a buffer and an offset and mirror the disk. Format: the kernel's
 * drivers/md/persistent-data/ and dm-thin-metadata.c, and thin-provisioning-tools' src/thin/.
 */
export { openPool, ThinPool } from './pool.js';
export type { OpenPoolOptions, DeviceUsage, SpaceMapUsage, MappingRun, PoolStats } from './pool.js';
export { BLOCK_SIZE, SALT, blockChecksum, rawChecksum, identifyBlock, verifyBlock } from './checksum.js';
export type { BlockKind } from './checksum.js';
export { decodeSuperblock, THIN_MAGIC, NEEDS_CHECK_FLAG, MAX_METADATA_BLOCKS } from './superblock.js';
export type { Superblock } from './superblock.js';
export { decodeNodeHeader, expectedMaxEntries, leaves, forEachEntry, lookup, MAX_DEPTH } from './btree.js';
export type { NodeHeader, NodeReader } from './btree.js';
export { decodeDeviceDetails, MAX_THIN_DEVICE_ID } from './details.js';
export type { DeviceDetails } from './details.js';
export {
  decodeSmRoot,
  decodeIndexEntry,
  decodeMetadataIndex,
  bitmapEntry,
  countBitmap,
  ENTRIES_PER_BITMAP,
} from './space-map.js';
export type { SmRoot, IndexEntry, BitmapCounts } from './space-map.js';
export { countExclusive } from './usage.js';
export { kernelMetadataAccounting, metadataReserve, KERNEL_RULES, MAX_METADATA_RESERVE } from './reserve.js';
export type { KernelRule, MetadataAccounting } from './reserve.js';
export {
  scanStale,
  buildLiveIndex,
  classifyBlocks,
  versionRuns,
  lineageCompare,
  classifyNode,
  metadataAllocated,
  BLOCK_SHARED,
  BLOCK_FREE,
  BLOCK_REUSED,
} from './stale.js';
export type {
  StaleScanOptions,
  StaleScanResult,
  DeletedDevice,
  DeletedVersion,
  VersionMappings,
  LiveIndex,
  BlockStatus,
  UnattributedTree,
} from './stale.js';
