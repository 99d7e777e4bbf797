/** Loop devices: which are free, and which file backs which (from /sys, read-only). */
import * as fs from 'node:fs';

/** Free /dev/loopN nodes (present in /dev, with no backing file), lowest first. */
export function freeLoopDevices(count: number, devDir = '/dev', sysDir = '/sys/block'): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(devDir).filter((n) => /^loop\d+$/.test(n));
  } catch {
    return [];
  }
  names.sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  const out: string[] = [];
  for (const n of names) {
    if (fs.existsSync(`${sysDir}/${n}/loop/backing_file`)) continue;
    out.push(`${devDir}/${n}`);
    if (out.length === count) break;
  }
  return out;
}
