/**
 * Docker's own view of the pool: `docker info`'s DriverStatus (Data / Metadata Space Used / Total / Available,
 * Thin Pool Minimum Free Space) beside dminspect's numbers. Docker prints sizes with go-units `HumanSize`
 * (decimal units, 4 significant digits: "11.53MB"); dminspect's bytes are printed the same way and compared as
 * Docker shows them, so rounding is never a disagreement.
 */
import type { ThinPoolStatus } from '../dm/dmsetup.js';
import type { DaemonInfo } from '../docker/daemon.js';
import type { Finding } from '../finding.js';

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/** go-units HumanSize: `%.4g` of the size in the largest decimal unit below it. */
export function dockerHumanSize(bytes: number): string {
  let size = bytes;
  let i = 0;
  while (size >= 1000 && i < UNITS.length - 1) {
    size /= 1000;
    i++;
  }
  return `${Number(size.toPrecision(4))}${UNITS[i]}`;
}

export interface DaemonFigure {
  field: string;
  docker: string;
  /** dminspect's figure in Docker's format. */
  dminspect: string;
  agree: boolean;
}

export interface DaemonPoolView {
  host: string;
  serverVersion: string | null;
  poolName: string | null;
  driverStatus: Record<string, string>;
  compared: DaemonFigure[];
}

/** The report's space numbers (bytes) that Docker shows too. */
export interface SpaceBytes {
  dataUsed: number;
  dataTotal: number;
  metadataUsed: number;
  metadataTotal: number;
}

export function statusBytes(s: ThinPoolStatus, dataBlockBytes: number): SpaceBytes {
  return {
    dataUsed: s.usedDataBlocks * dataBlockBytes,
    dataTotal: s.totalDataBlocks * dataBlockBytes,
    metadataUsed: s.usedMetadataBlocks * 4096,
    metadataTotal: s.totalMetadataBlocks * 4096,
  };
}

const FIELDS: [keyof SpaceBytes, string][] = [
  ['dataUsed', 'Data Space Used'],
  ['dataTotal', 'Data Space Total'],
  ['metadataUsed', 'Metadata Space Used'],
  ['metadataTotal', 'Metadata Space Total'],
];

/**
 * Compares `docker info` with the report's figures. `fresh`: the kernel's figures taken right after `docker
 * info` — when Docker agrees with those, the pool moved between the two reads and nothing is reported.
 */
export function compareWithDaemon(
  info: DaemonInfo,
  ours: SpaceBytes,
  fresh: SpaceBytes | null,
  pool: string,
): { view: DaemonPoolView; findings: Finding<'daemon-disagrees'>[] } {
  const ds = info.driverStatus;
  const compared: DaemonFigure[] = [];
  for (const [key, field] of FIELDS) {
    const docker = ds[field];
    if (docker === undefined) continue;
    const mine = dockerHumanSize(ours[key]);
    compared.push({
      field,
      docker,
      dminspect: mine,
      agree: docker === mine || (fresh !== null && docker === dockerHumanSize(fresh[key])),
    });
  }
  const view: DaemonPoolView = {
    host: info.host,
    serverVersion: info.serverVersion,
    poolName: ds['Pool Name'] ?? null,
    driverStatus: ds,
    compared,
  };
  const bad = compared.filter((c) => !c.agree);
  const findings: Finding<'daemon-disagrees'>[] = bad.length
    ? [
        {
          kind: 'daemon-disagrees',
          severity: 'warning',
          message: `docker info disagrees with the kernel's figures for pool ${pool}: ${bad.map((c) => `${c.field} ${c.docker} (kernel: ${c.dminspect})`).join(', ')}`,
          evidence: { pool, compared },
          remedy:
            'check that the daemon uses this pool (docker info "Pool Name") and this root; run again on a quiet pool',
        },
      ]
    : [];
  return { view, findings };
}
