/** `/proc/self/mountinfo`: which mount points exist and what is mounted on them (proc(5)). */
import * as fs from 'node:fs';

export interface MountInfo {
  mountId: number;
  parentId: number;
  /** major:minor of the mounted device. */
  majMin: string;
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
}

/** Unescapes the octal escapes (\040 for space, ...) the kernel uses in mountinfo fields. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const a = line.slice(0, sep).split(' ');
    const b = line.slice(sep + 3).split(' ');
    if (a.length < 6 || b.length < 2) continue;
    out.push({
      mountId: Number(a[0]),
      parentId: Number(a[1]),
      majMin: a[2] ?? '',
      root: unescape(a[3] ?? ''),
      mountPoint: unescape(a[4] ?? ''),
      options: a[5] ?? '',
      fsType: b[0] ?? '',
      source: unescape(b[1] ?? ''),
      superOptions: b[2] ?? '',
    });
  }
  return out;
}

/** The mounts of this process's namespace; [] when /proc is not there. */
export function readMountInfo(file = '/proc/self/mountinfo'): MountInfo[] {
  try {
    return parseMountInfo(fs.readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
}
