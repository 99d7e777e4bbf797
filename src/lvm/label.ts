/**
 * The PV label (lib/label/label.h, lib/format_text/layout.h): a `LABELONE` label header in one of the first
 * four 512-byte sectors of the PV, then the `pv_header` (PV uuid, device size, data areas, metadata areas).
 */
import { LeCursor } from '../io/cursor.js';
import { DmiError } from '../errors.js';
import { calcCrc, INITIAL_CRC } from './crc.js';

export const LABEL_SECTOR = 512;
export const LABEL_SCAN_SECTORS = 4;
const LABEL_ID = Buffer.from('LABELONE', 'latin1');
const LVM2_TYPE = 'LVM2 001';
const MAX_AREAS = 16;

export interface DiskLocn {
  /** Byte offset from the start of the PV. */
  offset: number;
  /** Bytes (0 for a data area: up to the end of the device). */
  size: number;
}

export interface PvLabel {
  /** Sector (0..3) that holds the label. */
  sector: number;
  /** PV uuid as LVM prints it (`HW80Qw-jYc6-ypbC-u6Rs-GIs1-JJY2-dunJ63`). */
  uuid: string;
  /** Device size recorded at pvcreate / pvresize, in bytes. */
  deviceSize: number;
  dataAreas: DiskLocn[];
  metadataAreas: DiskLocn[];
  /** pv_header_extension version, when present. */
  extensionVersion: number | null;
}

/** LVM's uuid format: 32 characters in groups of 6-4-4-4-4-4-6. */
export function formatUuid(raw: string): string {
  const g = [6, 4, 4, 4, 4, 4, 6];
  const out: string[] = [];
  let i = 0;
  for (const n of g) {
    out.push(raw.slice(i, i + n));
    i += n;
  }
  return out.join('-');
}

/** Is there a `LABELONE` id in sector `i` of `head` (the PV's first 2048 bytes)? */
export function labelSector(head: Buffer): number | null {
  for (let i = 0; i < LABEL_SCAN_SECTORS; i++) {
    const at = i * LABEL_SECTOR;
    if (head.length >= at + LABEL_SECTOR && head.subarray(at, at + 8).equals(LABEL_ID)) return i;
  }
  return null;
}

/**
 * Decodes the label in `head` (the PV's first 2048 bytes). Null when no sector holds `LABELONE`; BAD_INPUT
 * naming `what` when the label is there but corrupt (checksum, sector number, type, pv_header).
 */
export function decodeLabel(head: Buffer, what: string): PvLabel | null {
  const sector = labelSector(head);
  if (sector === null) return null;
  const s = head.subarray(sector * LABEL_SECTOR, (sector + 1) * LABEL_SECTOR);
  const where = `${what}: LVM label in sector ${sector}`;
  // struct label_header, in field order (id, sector_xl, crc_xl, offset_xl, type).
  const c = new LeCursor(s, where);
  c.skip(8, 'id');
  const sectorXl = c.u64Big('sector_xl');
  const crc = c.u32('crc_xl');
  const offsetXl = c.u32('offset_xl');
  const type = c.bytes(8, 'type').toString('latin1');
  const calc = calcCrc(INITIAL_CRC, s.subarray(20));
  if (crc !== calc) {
    throw new DmiError(
      'BAD_INPUT',
      `${where}: checksum mismatch (label says 0x${crc.toString(16).padStart(8, '0')}, computed 0x${calc.toString(16).padStart(8, '0')}): corrupt label`,
    );
  }
  if (sectorXl !== BigInt(sector))
    throw new DmiError('BAD_INPUT', `${where}: the label says it is in sector ${sectorXl}`);
  if (type !== LVM2_TYPE)
    throw new DmiError(
      'UNSUPPORTED',
      `${where}: label type ${JSON.stringify(type)}, expected "${LVM2_TYPE}" (an LVM1 or pool PV?)`,
    );
  if (offsetXl < 32 || offsetXl > LABEL_SECTOR - 56)
    throw new DmiError('BAD_INPUT', `${where}: pv_header offset ${offsetXl} is outside the sector`);
  // struct pv_header at offset_xl: pv_uuid, device_size_xl, then the data and metadata disk_locn lists.
  c.seek(offsetXl);
  const rawUuid = c.bytes(32, 'pv_uuid').toString('latin1');
  if (!/^[A-Za-z0-9!#]{32}$/.test(rawUuid))
    throw new DmiError('BAD_INPUT', `${where}: PV uuid ${JSON.stringify(rawUuid)} is not an LVM uuid`);
  const deviceSize = c.u64Safe('device_size_xl');
  const list = (name: string): DiskLocn[] => {
    const out: DiskLocn[] = [];
    for (;;) {
      if (c.remaining < 16)
        throw new DmiError('BAD_INPUT', `${where}: the ${name} list runs past the label sector (no terminating entry)`);
      const offset = c.u64Safe('disk_locn offset');
      const size = c.u64Safe('disk_locn size');
      if (offset === 0) return out;
      if (out.length >= MAX_AREAS) throw new DmiError('BAD_INPUT', `${where}: more than ${MAX_AREAS} ${name}`);
      out.push({ offset, size });
    }
  };
  const dataAreas = list('data areas');
  const metadataAreas = list('metadata areas');
  let extensionVersion: number | null = null;
  if (c.remaining >= 8) {
    const v = c.u32('pv_header_extension version');
    if (v > 0 && v < 256) extensionVersion = v;
  }
  return { sector, uuid: formatUuid(rawUuid), deviceSize, dataAreas, metadataAreas, extensionVersion };
}
