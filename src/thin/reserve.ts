/**
 * How the kernel counts metadata space. Since Linux 4.20 (dm-thin-metadata.c `__set_metadata_reserve`, commit
 * "dm thin metadata: try to avoid ever aborting transactions") the pool keeps a reserve of
 * min(total / 10, 4096) metadata blocks and reports it as used: `dmsetup status`, `docker info`'s "Metadata
 * Space Used", Docker's dm.min_free_space check and the pool's switch to read-only all see
 * allocated + reserve (at most the total). Older kernels report the allocated blocks alone.
 */
export const KERNEL_RULES = ['reserve', 'none'] as const;
/** `reserve`: Linux ≥ 4.20 (the default); `none`: kernels without the reserve. */
export type KernelRule = (typeof KERNEL_RULES)[number];

/** The reserve cap: 4096 blocks (16 MiB). */
export const MAX_METADATA_RESERVE = 4096;

export interface MetadataAccounting {
  totalBlocks: number;
  /** Blocks the on-disk space map counts as allocated. */
  allocatedBlocks: number;
  /** Blocks the kernel holds back and reports as used. */
  reserveBlocks: number;
  /** Used as the kernel counts it: allocated + reserve, at most the total. */
  usedBlocks: number;
  rule: KernelRule;
}

export function metadataReserve(totalBlocks: number, rule: KernelRule): number {
  return rule === 'none' ? 0 : Math.min(MAX_METADATA_RESERVE, Math.floor(totalBlocks / 10));
}

/** The kernel's view of metadata use (dm_pool_get_free_metadata_block_count: free below the reserve is 0). */
export function kernelMetadataAccounting(
  totalBlocks: number,
  allocatedBlocks: number,
  rule: KernelRule,
): MetadataAccounting {
  const reserveBlocks = metadataReserve(totalBlocks, rule);
  const free = Math.max(0, totalBlocks - allocatedBlocks);
  const kernelFree = free < reserveBlocks ? 0 : free - reserveBlocks;
  return { totalBlocks, allocatedBlocks, reserveBlocks, usedBlocks: totalBlocks - kernelFree, rule };
}
