// test/kernel/guest/lib.sh, the kernel guests' engine bounds, run on this host by real bash and coreutils' timeout.
// No dockerd can run here (no device-mapper), so `docker` and `dockerd` are FAKES: small shell scripts on PATH that
// hang, die or ignore SIGTERM on request. What is tested is lib.sh's contract with the harness (runInGuest boots a
// fresh guest when a script exits 124): a docker call that overruns exits 124 and names itself, a dockerd that dies
// is started again, one that ignores SIGTERM is killed and turned into exit 124, and no process is left behind.
import { execa } from 'execa';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GUEST_ENGINE_HANG } from '../kernel/harness.js';

const LIB = path.resolve('test/kernel/guest/lib.sh');
let dir: string;

// FAKE docker: `info` answers once the fake dockerd has written $FAKE/up; `hang` sleeps far past any bound.
const FAKE_DOCKER = `#!/bin/bash
case "$1" in
  info) [ -e "$FAKE/up" ] && [ -e "/proc/$(cat "$FAKE/up")" ] || exit 1; echo info ;;
  hang) exec sleep 600 ;;
  *) echo "fake docker: $*" ;;
esac
`;
// FAKE dockerd: dies at once for its first $FAKE_DIE_FIRST starts (counted in $FAKE/starts), then answers; with
// FAKE_IGNORE_TERM=1 it ignores SIGTERM; on SIGTERM it exits 3 (so DRC shows the status came through).
const FAKE_DOCKERD = `#!/bin/bash
n=$(( $(cat "$FAKE/starts" 2>/dev/null || echo 0) + 1 )); echo $n > "$FAKE/starts"
echo $$ >> "$FAKE/pids"
[ "$n" -le "\${FAKE_DIE_FIRST:-0}" ] && exit 1
if [ "\${FAKE_IGNORE_TERM:-0}" = 1 ]; then trap '' TERM; else trap 'exit 3' TERM; fi
echo $$ > "$FAKE/up"
while :; do sleep 0.2; done
`;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmi-guest-lib-'));
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.writeFileSync(path.join(dir, 'bin', 'docker'), FAKE_DOCKER, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'bin', 'dockerd'), FAKE_DOCKERD, { mode: 0o755 });
});

afterEach(() => {
  for (const pid of pids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

function pids(): number[] {
  const f = path.join(dir, 'pids');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').map(Number) : [];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `body` as a guest script does: bash, set -Eeuo pipefail, lib.sh sourced, the fakes first on PATH. */
async function guest(body: string, env: Record<string, string> = {}) {
  const script = `set -Eeuo pipefail\n. "${LIB}"\n${body}\n`;
  return execa('bash', ['-c', script], {
    reject: false,
    timeout: 60_000,
    env: { PATH: `${dir}/bin:${process.env.PATH}`, FAKE: dir, STEP_TIMEOUT: '2', ...env },
  });
}

describe('lib.sh: every engine step is bounded (fake docker and dockerd)', () => {
  it('a docker call that overruns STEP_TIMEOUT exits 124, names the command, and stops the script there', async () => {
    const r = await guest('docker hang now\necho after');
    expect(r.exitCode).toBe(GUEST_ENGINE_HANG);
    expect(r.stderr).toContain('guest: timed out after 2s:');
    expect(r.stderr).toContain('hang now');
    expect(r.stdout).not.toContain('after');
  });

  it('a docker call that fails keeps its own status (not the hang code)', async () => {
    const r = await guest('docker info');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).not.toContain('timed out');
  });

  it('step prints a progress marker with the uptime', async () => {
    const r = await guest('step pulling the image');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^@@ step \d+\.\d+ pulling the image$/m);
  });

  it('dockerd_start starts a dockerd that died again, and docker then answers', async () => {
    const r = await guest('dockerd_start "$FAKE/log" 5 3 --fake-arg\ndocker info\ndockerd_stop\necho "DRC=$DRC"', {
      FAKE_DIE_FIRST: '1',
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`@@ dockerd-retry 1 ${dir}/log`); // which daemon (a guest may run several)
    expect(r.stdout).not.toContain('@@ dockerd-retry 2');
    expect(r.stdout).toContain('info');
    expect(r.stdout).toContain('DRC=3'); // the SIGTERM exit status came through
    expect(fs.readFileSync(path.join(dir, 'starts'), 'utf8').trim()).toBe('2');
    expect(pids().filter(alive)).toEqual([]);
  });

  it('dockerd_start gives up after ATTEMPTS and returns 1 for the caller to decide', async () => {
    const r = await guest('dockerd_start "$FAKE/log" 2 2 || echo "gave up rc=$?"', { FAKE_DIE_FIRST: '9' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('@@ dockerd-retry 2');
    expect(r.stdout).toContain('gave up rc=1');
    expect(fs.readFileSync(path.join(dir, 'starts'), 'utf8').trim()).toBe('2');
  });

  it('a dockerd that ignores SIGTERM is killed after STEP_TIMEOUT and the script exits 124', async () => {
    const r = await guest('dockerd_start "$FAKE/log" 5 1\ndockerd_stopped_or_hang\necho after', {
      FAKE_IGNORE_TERM: '1',
    });
    expect(r.exitCode).toBe(GUEST_ENGINE_HANG);
    expect(r.stderr).toMatch(/guest: dockerd \(pid \d+\) still alive 2s after SIGTERM; killed/);
    expect(r.stdout).not.toContain('after');
    expect(pids().length).toBe(1);
    expect(pids().filter(alive)).toEqual([]);
  });
});
