/**
 * A real dockerd 20.10 with the devicemapper storage driver (loop-lvm) in a real kernel: image imported
 * from a tarball, containers that exit / are only created / keep running, docker inspect, clean stop,
 * sparse capture of the Docker root, and each container's thin device hashed through the kernel.
 * The same scenario made the committed fixtures/captures/ (fixtures/captures/make-captures.sh).
 * DMI_DOCKER_FS=xfs,ext4 picks the filesystems (default xfs, Docker's own default).
 */
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkEngine, checkTarball, readEngine } from './engine.js';
import {
  GUEST_DIR,
  describeRun,
  guestScript,
  markers,
  runInGuest,
  skipWithoutKernel,
  type GuestResult,
} from './harness.js';

const FS = (process.env.DMI_DOCKER_FS || 'xfs').split(',').filter(Boolean) as ('xfs' | 'ext4')[];

describe.skipIf(skipWithoutKernel(['docker', 'thin']))('real dockerd 20.10, devicemapper loop-lvm', () => {
  const runs: GuestResult[] = [];
  afterAll(async () => {
    for (const r of runs) await r.cleanup();
  });

  it.each(FS)('%s: containers, inspect, clean stop, capture, device hashes', async (fsType) => {
    const r = await runInGuest({
      script: guestScript('docker-capture.sh'),
      // image devices are hashed for the committed captures only (saves time here)
      env: { DM_FS: fsType, HASH_IMAGES: '0', ENGINE_JSON_MJS: path.join(GUEST_DIR, 'engine-json.mjs') },
      timeoutSec: 900,
      memMB: 2048,
    });
    runs.push(r);
    expect(r.code, describeRun(r)).toBe(0);
    const m = markers(r.stdout);
    expect(m.get('done')).toBeDefined();
    const steps = m.get('step') ?? [];
    expect(
      steps.some((s) => s.includes('dockerd stopped (exit 0)')),
      steps.join('\n'),
    ).toBe(true);

    const capture = path.join(r.scratch, 'capture');
    const engine = readEngine(path.join(capture, 'engine.json'));
    expect(m.get('pool')?.[0]).toBe(engine.pool.name);
    checkEngine(engine, fsType);
    for (const img of engine.images) expect(img.device).toBeNull(); // HASH_IMAGES=0
    await checkTarball(path.join(capture, 'docker-root.tar.gz'), engine);
  });
});
