/**
 * Runs shell scripts inside a throw-away QEMU guest (TCG) that boots the host's Debian kernel, so the
 * test suite can use a real device-mapper / dm-thin / dockerd even though the host kernel has none.
 * The guest sees the host root read-only (so this checkout is visible at the same path) and a writable
 * scratch dir at /scratch, shared back with the host. See test/kernel/vm/vmrun.sh and README.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const KERNEL_TEST_DIR = path.dirname(fileURLToPath(import.meta.url));
export const PROJECT_ROOT = path.resolve(KERNEL_TEST_DIR, '../..');
export const VMRUN = path.join(KERNEL_TEST_DIR, 'vm', 'vmrun.sh');
export const SETUP_HOST = path.join(KERNEL_TEST_DIR, 'vm', 'setup-host.sh');
export const GUEST_DIR = path.join(KERNEL_TEST_DIR, 'guest');
export const CAPTURES_DIR = path.join(PROJECT_ROOT, 'fixtures', 'captures');

export function vmLab(): string {
  return process.env.DMI_VMLAB || '/tmp/dminspect-vmlab';
}

export interface RunInGuestOptions {
  /** bash script text, run with cwd /scratch in the guest */
  script: string;
  /** positional arguments for the script */
  args?: string[];
  /** environment for the script */
  env?: Record<string, string>;
  /** files to put into the scratch dir before boot: relative name -> content */
  files?: Record<string, string | Buffer>;
  /** whole-VM timeout (boot + script + poweroff), seconds; default 600 */
  timeoutSec?: number;
  /** guest RAM in MiB; default 2048 */
  memMB?: number;
  /** keep the scratch dir after cleanup() (also: DMI_VM_KEEP=1) */
  keep?: boolean;
  /** stream the guest console to stderr (also: DMI_VM_VERBOSE=1) */
  verbose?: boolean;
  /**
   * Boot a fresh guest again (at most this many times) when the script exits 124: by the guest scripts' convention
   * (guest/lib.sh) a bounded engine step (dockerd, docker) overran its timeout: the engine hung under TCG, which is
   * not a dminspect result. The hung attempt's output is printed on stderr. Any other exit code is returned as it
   * is. Default 1; a test's own timeout must allow for it (guestTimeoutMs).
   */
  retryEngineHang?: number;
}

export interface GuestResult {
  /** the script's own stdout / stderr (not vmrun's messages) */
  stdout: string;
  stderr: string;
  /** the script's exit code; 125 when the guest never reported one (see log) */
  code: number;
  /** host path of the scratch dir the guest saw as /scratch */
  scratch: string;
  /** vmrun.sh's stderr: wall time, and on failure the reason and the console tail */
  log: string;
  /** the guest serial console (kernel messages + script output) */
  console: string;
  /** wall seconds of the VM run, as measured by vmrun.sh */
  wallSec: number;
  /** guests booted for this result: 1, or more when retryEngineHang re-ran a hung engine */
  attempts: number;
  /** removes the scratch dir unless it is to be kept (keep / DMI_VM_KEEP=1) */
  cleanup(): Promise<void>;
}

export interface KernelCheck {
  ok: boolean;
  /** why not, with the package or kernel to install */
  reason: string;
  kver?: string;
}

export type KernelNeed = 'thin' | 'docker' | 'xfs';

function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (!dir) continue;
    const p = path.join(dir, bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

function newestKernel(): string | undefined {
  let versions: string[];
  try {
    versions = fs.readdirSync('/lib/modules');
  } catch {
    return undefined;
  }
  versions.sort((a, b) => b.localeCompare(a, undefined, { numeric: true }));
  return versions.find((v) => {
    try {
      fs.accessSync(`/boot/vmlinuz-${v}`, fs.constants.R_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Whether the guest can be booted here, and (with `needs`) whether the tools a test uses are installed.
 * Synchronous so it can drive describe.skipIf(). The reason names what to install.
 */
export function kernelAvailable(needs: KernelNeed[] = []): KernelCheck {
  const fix = `run ${path.relative(process.cwd(), SETUP_HOST) || SETUP_HOST} (Debian 12)`;
  const missing: string[] = [];
  const need = (bin: string, pkg: string) => {
    if (!onPath(bin)) missing.push(`${bin} (package ${pkg})`);
  };
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return {
      ok: false,
      reason: `kernel tests need an x86-64 Linux host (this is ${process.platform}/${process.arch})`,
    };
  }
  need('qemu-system-x86_64', 'qemu-system-x86');
  need('modprobe', 'kmod');
  need('cpio', 'cpio');
  need('flock', 'util-linux');
  if (!fs.existsSync('/bin/busybox')) missing.push('/bin/busybox (package busybox-static)');
  const kver = process.env.DMI_KVER || newestKernel();
  if (!kver) {
    missing.push('a kernel: /boot/vmlinuz-<v> + /lib/modules/<v> (package linux-image-amd64)');
  } else {
    try {
      fs.accessSync(`/boot/vmlinuz-${kver}`, fs.constants.R_OK);
    } catch {
      missing.push(`kernel image /boot/vmlinuz-${kver} (package linux-image-amd64)`);
    }
    const md = `/lib/modules/${kver}/kernel/drivers/md`;
    let dm: string[] = [];
    try {
      dm = fs.readdirSync(md);
    } catch {
      /* none */
    }
    if (!dm.some((f) => f.startsWith('dm-thin-pool.ko')))
      missing.push(`dm-thin-pool module for ${kver} (package linux-image-amd64)`);
  }
  need('dmsetup', 'dmsetup');
  need('losetup', 'mount');
  if (needs.includes('thin')) {
    need('thin_ls', 'thin-provisioning-tools');
    need('mkfs.ext4', 'e2fsprogs');
  }
  if (needs.includes('xfs')) need('mkfs.xfs', 'xfsprogs');
  if (needs.includes('docker')) {
    if (!fs.existsSync('/usr/bin/docker') || !fs.existsSync('/usr/sbin/dockerd'))
      missing.push('/usr/bin/docker + /usr/sbin/dockerd 20.10 (package docker.io)');
    need('containerd', 'containerd');
    need('runc', 'runc');
    need('mkfs.xfs', 'xfsprogs');
    need('thin_dump', 'thin-provisioning-tools');
  }
  if (missing.length)
    return { ok: false, reason: `kernel tests cannot run: missing ${missing.join(', ')}; ${fix}`, kver };
  return { ok: true, reason: '', kver };
}

/**
 * For describe.skipIf(): true when the kernel suite must be skipped. Prints why. With DMI_REQUIRE_KERNEL=1
 * (CI) nothing is skipped, so the missing piece shows up as a failure instead.
 */
export function skipWithoutKernel(needs: KernelNeed[] = []): boolean {
  const k = kernelAvailable(needs);
  if (k.ok) return false;
  if (process.env.DMI_REQUIRE_KERNEL === '1') return false;
  console.warn(`[kernel tests skipped] ${k.reason}`);
  return true;
}

/** The text of a script in test/kernel/guest/. */
export function guestScript(name: string): string {
  return fs.readFileSync(path.join(GUEST_DIR, name), 'utf8');
}

/** Exit code of a guest script whose bounded engine step (dockerd, docker) overran its timeout. */
export const GUEST_ENGINE_HANG = 124;

/** A test's timeout (ms) for a guest of `timeoutSec`, booted up to `attempts` times (the default: one retry). */
export function guestTimeoutMs(timeoutSec: number, attempts = 2): number {
  return attempts * (timeoutSec + 150) * 1000;
}

/**
 * Boots a fresh guest, runs `script` in it and returns its output. Never throws for a non-zero exit. With
 * retryEngineHang, a run whose engine hung (exit 124) is reported on stderr and the guest booted again.
 */
export async function runInGuest(opts: RunInGuestOptions): Promise<GuestResult> {
  for (let attempt = 1; ; attempt++) {
    const r = await runGuestOnce(opts, attempt);
    if (r.code !== GUEST_ENGINE_HANG || attempt > (opts.retryEngineHang ?? 1)) return r;
    console.warn(`[runInGuest] attempt ${attempt}: the engine hung in the guest; booting again\n${describeRun(r)}`);
    await r.cleanup();
  }
}

async function runGuestOnce(opts: RunInGuestOptions, attempt: number): Promise<GuestResult> {
  const k = kernelAvailable();
  if (!k.ok) throw new Error(k.reason);
  const keep = opts.keep || process.env.DMI_VM_KEEP === '1';
  const runs = path.join(vmLab(), 'runs');
  fs.mkdirSync(runs, { recursive: true });
  const scratch = fs.mkdtempSync(path.join(runs, 'test.'));
  const scriptFile = path.join(scratch, '.script.sh');
  fs.writeFileSync(scriptFile, opts.script, { mode: 0o755 });
  for (const [name, content] of Object.entries(opts.files ?? {})) {
    const dest = path.resolve(scratch, name);
    if (!dest.startsWith(scratch + path.sep)) throw new Error(`runInGuest: file name escapes the scratch dir: ${name}`);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, content);
  }
  const timeoutSec = opts.timeoutSec ?? 600;
  const args = ['-s', scratch, '-t', String(timeoutSec), '-m', String(opts.memMB ?? 2048)];
  for (const [name, value] of Object.entries(opts.env ?? {})) args.push('-e', `${name}=${value}`);
  if (opts.verbose || process.env.DMI_VM_VERBOSE === '1') args.push('-v');
  args.push('-f', scriptFile, '--', ...(opts.args ?? []));

  const proc = await execa(VMRUN, args, {
    reject: false,
    stdin: 'ignore',
    // vmrun's own timeout stops qemu; this is a backstop (waiting for the VM lock is included)
    timeout: (timeoutSec + 120) * 1000,
    maxBuffer: 256 * 1024 * 1024,
    env: { DMI_VM_KEEP: '0' },
  });
  const r = path.join(scratch, '.vmrun');
  const read = (f: string) => {
    try {
      return fs.readFileSync(path.join(r, f), 'utf8');
    } catch {
      return '';
    }
  };
  const rcText = read('rc').trim();
  const code = rcText === '' ? 125 : Number(rcText);
  const log = String(proc.stderr ?? '') + (proc.timedOut ? '\nrunInGuest: vmrun.sh timed out' : '');
  const result: GuestResult = {
    stdout: rcText === '' ? String(proc.stdout ?? '') : read('stdout'),
    stderr: rcText === '' ? log : read('stderr'),
    code,
    scratch,
    log,
    console: read('console.log'),
    wallSec: Number(read('timing').trim()) || 0,
    attempts: attempt,
    async cleanup() {
      if (keep) {
        console.warn(`[runInGuest] kept scratch dir ${scratch}`);
        return;
      }
      await fs.promises.rm(scratch, { recursive: true, force: true });
    },
  };
  if (keep) console.warn(`[runInGuest] scratch dir ${scratch}`);
  return result;
}

/** Lines of the form "@@ key value..." that the guest scripts print for the tests. */
export function markers(stdout: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    const m = /^@@ (\S+) ?(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1] ?? '';
    const list = out.get(key) ?? [];
    list.push((m[2] ?? '').trim());
    out.set(key, list);
  }
  return out;
}

/** A failure message with everything needed to see what went wrong in the guest. */
export function describeRun(r: GuestResult): string {
  const tail = (s: string, n: number) => s.split('\n').slice(-n).join('\n');
  return [
    `guest exit code ${r.code}${r.code === GUEST_ENGINE_HANG ? ' (a bounded engine step overran: the engine hung)' : ''} (wall ${r.wallSec}s, attempt ${r.attempts}, scratch ${r.scratch})`,
    '--- stdout (tail)',
    tail(r.stdout, 40),
    '--- stderr (tail)',
    tail(r.stderr, 40),
    '--- vmrun log (tail)',
    tail(r.log, 30),
  ].join('\n');
}

/** `txn um/tm ud/td held mode`: fields 4-8 of `dmsetup status <pool>`, as the guest scripts print them. */
export function poolStatusFields(line: string) {
  const [txn, meta, data, held, mode] = line.trim().split(/\s+/);
  const [um, tm] = (meta ?? '').split('/').map(Number);
  const [ud, td] = (data ?? '').split('/').map(Number);
  return { txn: Number(txn), um: um!, tm: tm!, ud: ud!, td: td!, held: held!, mode: mode! };
}
