/**
 * LVM2's checksum (lib/misc/crc.c `calc_crc`): the reflected CRC-32 polynomial 0xEDB88320 with no
 * pre/post inversion, started at INITIAL_CRC. Used for the label header, the mda header and the metadata text.
 */
export const INITIAL_CRC = 0xf597a6cf;

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** calc_crc(initial, buf): continue a checksum over `buf` (chain calls for text that wraps around the area). */
export function calcCrc(initial: number, buf: Uint8Array): number {
  let crc = initial >>> 0;
  for (let i = 0; i < buf.length; i++) crc = TABLE[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
  return crc >>> 0;
}
