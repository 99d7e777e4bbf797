import { describe, expect, it } from 'vitest';
import { executePlan, renderPlan, shellQuote, type Plan, type RunResult } from '../../src/dm/plan.js';

/** A fake runner (no kernel here): records argv and fails the commands it is told to. */
function fakeRunner(failOn: (argv: string[]) => RunResult | null) {
  const calls: string[] = [];
  const run = async (argv: string[]) => {
    calls.push(argv.join(' '));
    return failOn(argv) ?? { code: 0, stdout: '', stderr: '' };
  };
  return { calls, run };
}

const plan: Plan = {
  steps: [
    { what: 'a', argv: ['dmsetup', 'suspend', 'o'], undo: ['dmsetup', 'resume', 'o'] },
    {
      what: 'b',
      argv: ['dmsetup', 'message', 'p', '0', 'create_snap 9 6'],
      undo: ['dmsetup', 'message', 'p', '0', 'delete 9'],
    },
    { what: 'c', argv: ['dmsetup', 'resume', 'o'], undo: null },
    {
      what: 'd',
      argv: ['dmsetup', 'create', 's', '--readonly', '--table', '0 8 thin /dev/mapper/p 9'],
      undo: ['dmsetup', 'remove', 's'],
    },
    { what: 'e', argv: ['mount', '-o', 'ro', '/dev/mapper/s', '/mnt'], undo: ['umount', '/mnt'] },
  ],
};

describe('plans', () => {
  it('quotes for the shell', () => {
    expect(shellQuote('create_snap 9 6')).toBe("'create_snap 9 6'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote('/dev/mapper/docker-0:33-25-pool')).toBe('/dev/mapper/docker-0:33-25-pool');
    expect(shellQuote('')).toBe("''");
  });

  it('renders steps as shell lines and the undo block in reverse', () => {
    const text = renderPlan(plan).split('\n');
    expect(text[1]).toBe("dmsetup message p 0 'create_snap 9 6'    # b");
    expect(text.slice(6)).toEqual([
      '#   umount /mnt',
      '#   dmsetup remove s',
      "#   dmsetup message p 0 'delete 9'",
      '#   dmsetup resume o',
    ]);
  });

  it('runs every step in order when all succeed', async () => {
    const f = fakeRunner(() => null);
    await executePlan(plan, f.run);
    expect(f.calls).toEqual(plan.steps.map((s) => s.argv.join(' ')));
  });

  it('a failure halfway undoes what ran, in reverse, and says so', async () => {
    const f = fakeRunner((argv) =>
      argv[0] === 'mount' ? { code: 32, stdout: '', stderr: 'mount: /mnt: wrong fs type' } : null,
    );
    await expect(executePlan(plan, f.run)).rejects.toThrow(
      /mount read-only|e failed: mount -o ro \/dev\/mapper\/s \/mnt: mount: \/mnt: wrong fs type; everything before it was undone/,
    );
    expect(f.calls.slice(5)).toEqual(['dmsetup remove s', 'dmsetup message p 0 delete 9', 'dmsetup resume o']);
  });

  it('create_snap failing resumes the origin', async () => {
    const f = fakeRunner((argv) =>
      argv[3] === '0' && argv[4]?.startsWith('create_snap')
        ? { code: 1, stdout: '', stderr: 'device-mapper: message ioctl on p failed: File exists' }
        : null,
    );
    await expect(executePlan(plan, f.run)).rejects.toThrow(/File exists/);
    expect(f.calls).toEqual(['dmsetup suspend o', 'dmsetup message p 0 create_snap 9 6', 'dmsetup resume o']);
  });

  it('the error names the useful line of the tool’s output', async () => {
    const f = fakeRunner((argv) =>
      argv[0] === 'mount'
        ? {
            code: 32,
            stdout: '',
            stderr:
              'mount: /mnt: wrong fs type, bad option, bad superblock on /dev/mapper/s.\n       dmesg(1) may have more information after failed mount system call.\n',
          }
        : null,
    );
    await expect(executePlan(plan, f.run)).rejects.toThrow(
      /^e failed: mount -o ro \/dev\/mapper\/s \/mnt: mount: \/mnt: wrong fs type, bad option, bad superblock on \/dev\/mapper\/s\.; everything before it was undone$/,
    );
    const g = fakeRunner((argv) =>
      argv[4]?.startsWith('create_snap')
        ? { code: 1, stdout: '', stderr: 'device-mapper: message ioctl on p failed: File exists\nCommand failed.\n' }
        : null,
    );
    await expect(executePlan(plan, g.run)).rejects.toThrow(
      /create_snap 9 6': device-mapper: message ioctl on p failed: File exists; everything/,
    );
  });

  it('tolerated failures count as done; failed undos are reported', async () => {
    const tolerant: Plan = { steps: [{ what: 'x', argv: ['umount', '/m'], undo: null, okIf: ['not mounted'] }] };
    const f = fakeRunner(() => ({ code: 32, stdout: '', stderr: 'umount: /m: not mounted.' }));
    await expect(executePlan(tolerant, f.run)).resolves.toHaveLength(1);
    const g = fakeRunner((argv) =>
      argv[0] === 'mount' || argv[1] === 'remove' ? { code: 1, stdout: '', stderr: 'busy' } : null,
    );
    await expect(executePlan(plan, g.run)).rejects.toThrow(/could not undo: dmsetup remove s/);
  });
});
