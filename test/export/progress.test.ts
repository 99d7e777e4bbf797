/** Pure parts of the export command: progress line, flag parsing (no root needed). */
import { describe, expect, it } from 'vitest';
import { parseDeviceId, parseSize, progressLine } from '../../src/cli/shared.js';

describe('export progress and flags', () => {
  it('progress line: bar, percent, bytes, rate, ETA', () => {
    const line = progressLine({ done: 512 * 1024 * 1024, total: 2 * 1024 ** 3, copied: 0 }, 2000, 20);
    expect(line).toBe('[#####...............]  25%  512 MiB / 2 GiB  256 MiB/s  ETA 0:06');
    expect(progressLine({ done: 0, total: 100, copied: 0 }, 0, 4)).toBe('[....]   0%  0 B / 100 B  0 B/s  ETA --:--');
    expect(progressLine({ done: 10, total: 10, copied: 10 }, 1000, 4)).toMatch(/^\[####\] 100% .* ETA 0:00$/);
    expect(progressLine({ done: 1000, total: 1000 + 3600 * 1000, copied: 0 }, 1000, 4)).toMatch(/ETA 1:00:00$/);
  });

  it('--size and --device-id are checked', () => {
    expect(parseSize('4096')).toBe(4096);
    expect(() => parseSize('1000')).toThrow(/not a multiple of 512/);
    expect(() => parseSize('10G')).toThrow(/expected a number of bytes/);
    expect(parseDeviceId('16777215')).toBe(16777215);
    expect(() => parseDeviceId('16777216')).toThrow(/0\.\.16777215/);
    expect(() => parseDeviceId('-1')).toThrow(/expected a thin device id/);
  });
});
