/**
 * The single-file binary (release/dminspect-linux-x64, `npm run build:binary`) on a CentOS 7 host, as near as this
 * machine gets: a chroot with CentOS 7's glibc 2.17 and libstdc++ 6.0.19 and no Node.js (test/binary/centos7-root.sh),
 * /proc and /dev mounted, /tmp a noexec tmpfs, and every system call added after Linux 3.10 answering ENOSYS
 * (test/binary/linux310.c, seccomp through libseccomp; getrandom blocked too, i.e. RHEL 7.0-7.3 kernels).
 * The binary's JSON must equal the Node build's (this process) on fixtures/sample and the real captures, and an
 * export of a captured container must be the bytes the kernel read (sha256 in engine.json).
 * A negative control shows the userspace is what it claims: a modern Node does not start there.
 *
 * Needs root (chroot, mount), gcc + libseccomp-dev, busybox-static, xz; .ci/run installs them. Missing ones skip
 * the suite on a developer's machine and fail it under CI.
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, hashFile, REPO } from '../support/cli.js';

const CI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
const HERE = path.join(REPO, 'test', 'binary');
const BINARY = path.join(REPO, 'release', 'dminspect-linux-x64');

function missingPrerequisites(): string[] {
  const missing: string[] = [];
  if (process.platform !== 'linux' || process.arch !== 'x64') missing.push('linux-x64');
  if (process.getuid?.() !== 0) missing.push('root (chroot, mount)');
  const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
  if (!has('gcc', ['--version'])) missing.push('gcc');
  else if (!has('gcc', ['-fsyntax-only', path.join(HERE, 'linux310.c')])) missing.push('libseccomp-dev');
  if (!fs.existsSync('/bin/busybox')) missing.push('busybox-static');
  if (!has('xz', ['--version'])) missing.push('xz-utils');
  if (
    !fs.existsSync(
      path.join(REPO, 'node_modules/@napi-rs/cross-toolchain-x64-target-x86_64/x86_64-unknown-linux-gnu.tar.xz'),
    )
  )
    missing.push('npm: @napi-rs/cross-toolchain-x64-target-x86_64');
  if (!fs.existsSync(path.join(REPO, 'node_modules/@oven/bun-linux-x64-baseline/bin/bun')))
    missing.push('npm: @oven/bun-linux-x64-baseline');
  return missing;
}
const missing = missingPrerequisites();

it(`prerequisites of the CentOS 7 binary test are present${CI ? ' (CI: required)' : ''}`, () => {
  if (!CI && missing.length) return; // a developer's machine: the suite below is skipped, and says why
  expect(missing, 'install them (see .ci/run)').toEqual([]);
});

const CAPTURES = ['xfs', 'ext4'].filter((k) =>
  fs.existsSync(path.join(REPO, 'fixtures/captures', k, 'docker-root.tar.gz')),
);

describe.skipIf(missing.length > 0)(
  `the binary in a CentOS 7 userspace on "Linux 3.10"${missing.length ? ` (skipped: missing ${missing.join(', ')})` : ''}`,
  () => {
    let work = '';
    let root = ''; // the chroot
    let launcher = '';
    const mounts: string[] = [];

    beforeAll(() => {
      // a fresh binary from this tree
      execFileSync(process.execPath, [path.join(REPO, 'scripts/build-binary.js')], { cwd: REPO, stdio: 'pipe' });
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'dminspect-centos7-'));
      root = path.join(work, 'root');
      execFileSync('bash', [path.join(HERE, 'centos7-root.sh'), root], { stdio: 'pipe' });
      launcher = path.join(work, 'linux310');
      execFileSync('gcc', ['-O2', '-Wall', '-Werror', '-o', launcher, path.join(HERE, 'linux310.c'), '-lseccomp'], {
        stdio: 'pipe',
      });
      fs.copyFileSync(BINARY, path.join(root, 'usr/local/bin/dminspect'));
      fs.chmodSync(path.join(root, 'usr/local/bin/dminspect'), 0o755);
      fs.copyFileSync(process.execPath, path.join(root, 'usr/bin/node'));
      fs.chmodSync(path.join(root, 'usr/bin/node'), 0o755);
      execFileSync('cp', ['-a', path.join(REPO, 'fixtures/sample'), path.join(root, 'data/sample')]);
      for (const k of CAPTURES) {
        fs.mkdirSync(path.join(root, 'data', k));
        execFileSync('tar', [
          '-xzf',
          path.join(REPO, 'fixtures/captures', k, 'docker-root.tar.gz'),
          '-C',
          path.join(root, 'data', k),
        ]);
      }
      fs.mkdirSync(path.join(root, 'data/out'));
      const mount = (args: string[], at: string) => {
        execFileSync('mount', [...args, at]);
        mounts.unshift(at);
      };
      mount(['-t', 'proc', 'proc'], path.join(root, 'proc'));
      mount(['--bind', '/dev'], path.join(root, 'dev'));
      mount(['-t', 'tmpfs', '-o', 'noexec,nosuid,nodev,size=64m', 'tmpfs'], path.join(root, 'tmp'));
    }, 300_000);

    afterAll(() => {
      for (const m of mounts) if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
      const still = fs.existsSync('/proc/self/mountinfo')
        ? fs
            .readFileSync('/proc/self/mountinfo', 'utf8')
            .split('\n')
            .filter((l) => work && l.includes(work))
        : [];
      if (work && still.length === 0) fs.rmSync(work, { recursive: true, force: true });
      expect(still, 'mounts left behind').toEqual([]);
    });

    /** Runs PROGRAM inside the chroot under the 3.10 filter. */
    function inside(
      argv: string[],
      opts: { allowGetrandom?: boolean; env?: Record<string, string> } = {},
    ): SpawnSyncReturns<string> {
      return spawnSync(
        launcher,
        [...(opts.allowGetrandom ? ['--allow-getrandom'] : []), '--chroot', root, '--', ...argv],
        {
          encoding: 'utf8',
          env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/', LANG: 'C', ...opts.env },
          maxBuffer: 64 << 20,
        },
      );
    }

    function binJson(...args: string[]): unknown {
      return binJsonWith({}, ...args);
    }

    /** binJson with environment variables set (DMINSPECT_USAGE_WORKER=only: the pool's usage walk in the worker). */
    function binJsonWith(env: Record<string, string>, ...args: string[]): unknown {
      const r = inside(['/usr/local/bin/dminspect', ...args, '--json'], { env });
      expect(r.stderr, `dminspect ${args.join(' ')}: stderr`).toBe('');
      expect(r.status, `dminspect ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return JSON.parse(r.stdout);
    }

    /** The Node build on the same files, seen from outside the chroot; paths rewritten to the chroot's view. */
    async function nodeJson(...args: string[]): Promise<unknown> {
      const hostArgs = args.map((a) => (a.startsWith('/data/') ? path.join(root, a) : a));
      const r = await cli(...hostArgs, '--json');
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout.split(root).join(''));
    }

    it('the launcher: post-3.10 system calls answer ENOSYS, MADV_FREE EINVAL; old ones work', () => {
      const r = spawnSync(launcher, ['--probe'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const got = Object.fromEntries(
        r.stdout
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.lastIndexOf(' ')), l.slice(l.lastIndexOf(' ') + 1)]),
      );
      expect(got).toEqual({
        getpid: 'ok',
        statx: 'ENOSYS',
        getrandom: 'ENOSYS',
        memfd_create: 'ENOSYS',
        copy_file_range: 'ENOSYS',
        clone3: 'ENOSYS',
        io_uring_setup: 'ENOSYS',
        openat2: 'ENOSYS',
        close_range: 'ENOSYS',
        rseq: 'ENOSYS',
        pidfd_open: 'ENOSYS',
        faccessat2: 'ENOSYS',
        'madvise(MADV_FREE)': 'EINVAL',
      });
      const g = spawnSync(launcher, ['--allow-getrandom', '--probe'], { encoding: 'utf8' });
      expect(g.stdout).toContain('getrandom ok');
    });

    it('negative control: a modern Node does not start there (glibc 2.17)', () => {
      expect(fs.existsSync(path.join(root, 'lib/libc-2.17.so'))).toBe(true);
      const r = inside(['/usr/bin/node', '--version']);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/version `GLIBC_2\.(2[89]|3\d)' not found/);
      // and the same Node runs outside: the chroot, not the file, is what stops it
      expect(spawnSync(path.join(root, 'usr/bin/node'), ['--version'], { encoding: 'utf8' }).stdout).toBe(
        `${process.version}\n`,
      );
    });

    it('--version: bun runtime, baseline binary build, portable CRC', () => {
      const r = inside(['/usr/local/bin/dminspect', '--version']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(
        /^dminspect \d+\.\d+\.\d+\nruntime: bun v\d+\.\d+\.\d+\nbuild: binary linux-x64 baseline, [0-9a-f]{12}(\+dirty)?\ncrc32c: portable/,
      );
    });

    it('fixtures/sample: containers, container, devices, pool equal the Node build', async () => {
      const containers = (await nodeJson('containers', '--root', '/data/sample')) as { containers: { name: string }[] };
      expect(containers.containers.length).toBeGreaterThan(0);
      expect(binJson('containers', '--root', '/data/sample')).toEqual(containers);
      for (const c of containers.containers) {
        expect(binJson('container', c.name, '--root', '/data/sample'), c.name).toEqual(
          await nodeJson('container', c.name, '--root', '/data/sample'),
        );
      }
      expect(binJson('devices', '--root', '/data/sample')).toEqual(await nodeJson('devices', '--root', '/data/sample'));
      const pool = await nodeJson('pool', '--root', '/data/sample');
      expect(binJson('pool', '--root', '/data/sample')).toEqual(pool);
      // the usage walk in a worker thread, evaluated from its source text inside the binary
      expect(binJsonWith({ DMINSPECT_USAGE_WORKER: 'only' }, 'pool', '--root', '/data/sample')).toEqual(pool);
    });

    it('bad input: the same one-line error and exit status as the Node build', async () => {
      const r = inside(['/usr/local/bin/dminspect', 'container', 'no-such-container', '--root', '/data/sample']);
      const n = await cli('container', 'no-such-container', '--root', path.join(root, 'data/sample'));
      expect(r.status).toBe(n.code);
      expect(r.status).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toBe(n.stderr.split(root).join(''));
    });

    for (const kind of CAPTURES) {
      it(`capture ${kind}: containers, container, devices, pool equal the Node build; export is the kernel's bytes; evidence unchanged`, async () => {
        const rootArg = `/data/${kind}/docker`;
        const engine = JSON.parse(fs.readFileSync(path.join(REPO, 'fixtures/captures', kind, 'engine.json'), 'utf8'));
        const hostRoot = path.join(root, rootArg);
        const meta = path.join(hostRoot, 'devicemapper/devicemapper/metadata');
        const data = path.join(hostRoot, 'devicemapper/devicemapper/data');
        const before = [hashFile(meta), hashFile(data)];

        expect(binJson('containers', '--root', rootArg)).toEqual(await nodeJson('containers', '--root', rootArg));
        for (const c of engine.containers) {
          const args = ['container', c.name, '--root', rootArg, '--pool', engine.pool.name];
          expect(binJson(...args), c.name).toEqual(await nodeJson(...args));
        }
        expect(binJson('devices', '--root', rootArg)).toEqual(await nodeJson('devices', '--root', rootArg));
        const pool = binJson('pool', '--root', rootArg, '--sort', 'id') as { version: number; devices: unknown[] };
        expect(pool.version).toBe(2);
        expect(pool).toEqual(await nodeJson('pool', '--root', rootArg, '--sort', 'id'));
        expect(binJsonWith({ DMINSPECT_USAGE_WORKER: 'only' }, 'pool', '--root', rootArg, '--sort', 'id')).toEqual(
          pool,
        );

        const c = engine.containers[0];
        const out = `/data/out/${kind}-${c.name}.img`;
        const r = binJson('export', c.name, out, '--root', rootArg) as { sha256: string; size: number };
        expect(r.sha256).toBe(c.device.sha256);
        expect(r.size).toBe(c.device.bytes);
        expect(hashFile(path.join(root, out)), 'the file written equals what the binary reported').toBe(
          c.device.sha256,
        );
        fs.rmSync(path.join(root, out));
        expect([hashFile(meta), hashFile(data)]).toEqual(before);
      }, 180_000);
    }

    it('with getrandom present (RHEL 7.4+ kernels) the answers are the same', () => {
      const r = inside(['/usr/local/bin/dminspect', 'containers', '--root', '/data/sample', '--json'], {
        allowGetrandom: true,
      });
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual(binJson('containers', '--root', '/data/sample'));
    });

    it('install-timer from the binary: ExecStart runs the binary itself, not node', () => {
      const r = inside([
        '/usr/local/bin/dminspect',
        'install-timer',
        '--dry-run',
        '--json',
        '--unit-dir',
        '/data',
        '--textfile-dir',
        '/data',
        '--root',
        '/data/sample',
      ]);
      expect(r.status, r.stderr).toBe(0);
      const plan = JSON.parse(r.stdout) as { units: { path: string; content: string }[] };
      const service = plan.units.find((u) => u.path.endsWith('.service'))!.content;
      expect(service).toContain('\nExecStart=/usr/local/bin/dminspect pool --root /data/sample --textfile /data\n');
      expect(service).toContain('\nReadWriteDirectories=/data\n');
    });

    it('nothing was written to /tmp (no extracted executable or addon)', () => {
      expect(fs.readdirSync(path.join(root, 'tmp'))).toEqual([]);
    });
  },
);
