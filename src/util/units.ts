/** Byte and sector arithmetic and human units (IEC, powers of 1024). */

export const SECTOR_SIZE = 512;

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** 1536 → "1.5 KiB"; exact powers print without decimals ("10 GiB"). */
export function humanBytes(n: number | bigint): string {
  let v = typeof n === 'bigint' ? Number(n) : n;
  if (!Number.isFinite(v)) return String(n);
  const neg = v < 0;
  if (neg) v = -v;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  const text =
    i === 0
      ? String(v)
      : Number.isInteger(v)
        ? String(v)
        : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2).replace(/\.?0+$/, '');
  return `${neg ? '-' : ''}${text} ${UNITS[i]}`;
}

export function percent(part: number, whole: number): number {
  if (whole <= 0) return 0;
  return Math.round((part / whole) * 10000) / 100;
}
