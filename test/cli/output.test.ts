/**
 * cli/output.ts writes with fs.writeSync instead of process.stdout (issue 15, start-up): every byte must still go out,
 * in order, through a pipe whose reader is slower than the writer and which someone left non-blocking (EAGAIN), and
 * through partial writes of a string with multi-byte characters.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeAll } from '../../src/cli/output.js';
import { buildV2Root } from '../../scripts/docker-root-builder.js';
import { BIN, tmpDir } from '../support/cli.js';

describe('writeAll', () => {
  it('a 6 MB string with multi-byte characters through a non-blocking pipe to a slow reader arrives whole', async () => {
    const out = path.join(tmpDir('dminspect-output-'), 'out');
    // the reader sleeps first, so the pipe (64 KiB) fills and the writes meet EAGAIN
    const reader = spawn('sh', ['-c', `sleep 0.3; cat > ${out}`], { stdio: ['pipe', 'ignore', 'inherit'] });
    const fd = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
    expect(fd).toBeGreaterThan(2); // libuv made this pipe non-blocking
    const text = Array.from({ length: 60000 }, (_, i) => `row ${i}: ≥ é — ✓ ${'x'.repeat(i % 50)}\n`).join('');
    expect(Buffer.byteLength(text)).toBeGreaterThan(text.length); // multi-byte
    writeAll(fd, text);
    writeAll(fd, 'end\n');
    reader.stdin!.end();
    await new Promise((resolve) => reader.on('close', resolve));
    expect(fs.readFileSync(out, 'utf8')).toBe(`${text}end\n`);
  });
});

describe('stdout closed by its reader', () => {
  it('`containers --json | head -c 100`: a quiet exit 141 (as SIGPIPE would), no error, no stack trace', () => {
    // 1,500 containers: a document larger than the pipe holds, so a write meets the closed pipe
    const root = path.join(tmpDir('dminspect-epipe-'), 'docker');
    buildV2Root(root, {
      images: [{ name: 'busybox:latest', layers: ['b'] }],
      containers: Array.from({ length: 1500 }, (_, i) => ({ name: `c${i}`, image: 'busybox:latest', state: 'exited' })),
    });
    const whole = spawnSync(process.execPath, [BIN, 'containers', '--root', root, '--json'], { encoding: 'utf8' });
    expect(whole.status).toBe(0);
    expect(whole.stdout.length).toBeGreaterThan(4 * 65536);
    const r = spawnSync(
      'bash',
      [
        '-c',
        `set -o pipefail; "${process.execPath}" "${BIN}" containers --root "${root}" --json | head -c 100 > /dev/null`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(141);
  });
});

describe('bin/dminspect.js exits with process.exit once main() returns (issue 15: no isolate teardown)', () => {
  it('a document larger than the pipe, read late by a slow reader, arrives whole; the exit status is main()’s', () => {
    const dir = tmpDir('dminspect-exit-');
    const root = path.join(dir, 'docker');
    buildV2Root(root, {
      images: [{ name: 'busybox:latest', layers: ['b'] }],
      containers: Array.from({ length: 1500 }, (_, i) => ({ name: `c${i}`, image: 'busybox:latest', state: 'exited' })),
    });
    const out = path.join(dir, 'out.json');
    // the reader sleeps first: the pipe (64 KiB) fills, and the process may only exit once every byte is written
    const r = spawnSync(
      'bash',
      [
        '-c',
        `set -o pipefail; "${process.execPath}" "${BIN}" containers --root "${root}" --json | (sleep 0.3; cat > "${out}")`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const text = fs.readFileSync(out, 'utf8');
    expect(text.length).toBeGreaterThan(4 * 65536);
    expect((JSON.parse(text) as { containers: unknown[] }).containers).toHaveLength(1500);
    // an error's status (6: no such root) comes out of process.exit as it came out of process.exitCode
    const missing = spawnSync(process.execPath, [BIN, 'containers', '--root', path.join(dir, 'none'), '--json'], {
      encoding: 'utf8',
    });
    expect(missing.status).toBe(6);
    expect(JSON.parse(missing.stdout)).toMatchObject({ error: { exitCode: 6 } });
  });
});
