/**
 * The checks on a real dockerd's roots after `docker rm` (test/kernel/guest/docker-deleted.sh): shared by the VM
 * test (test/kernel/docker-deleted.test.ts) and the host test on the committed capture
 * (test/recover/docker-deleted-capture.test.ts, fixtures/captures/docker-deleted/).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { cli, hashFile, readFromImage } from './cli.js';

async function json(...args: string[]): Promise<any> {
  const r = await cli(...args, '--json');
  expect(r.code, `dminspect ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout);
}

/**
 * `outDir` holds nodiscard.tar.gz, discard.tar.gz, directlvm.tar.gz, directlvm-disk.tar.gz; `m` the guest's @@ lines;
 * `marker` the MARKER the guest wrote. Returns one line of figures per root.
 */
export async function checkDockerDeleted(
  outDir: string,
  m: Map<string, string[]>,
  marker: string,
  tmp: string,
): Promise<string[]> {
  const get = (name: string, key: string): string =>
    (m.get(name) ?? []).find((l) => l.startsWith(`${key} `))?.slice(key.length + 1) ?? '';
  const figures: string[] = [];

  for (const name of ['nodiscard', 'discard', 'directlvm']) {
    const [idText = '', sizeText = ''] = get(name, 'device').split(' ');
    const deviceId = Number(idText);
    expect(deviceId).toBeGreaterThan(0);
    expect(get(name, 'records')).toBe('2'); // docker rm left no record of the container: base + image layer only
    const root = path.join(tmp, name);
    fs.mkdirSync(root);
    execFileSync('tar', ['--sparse', '-xzf', path.join(outDir, `${name}.tar.gz`), '-C', root]);
    // loop-lvm: the pool's files are in the root; direct-lvm: an LVM thin pool on the disk image
    let poolArgs: string[] = [];
    let evidenceFiles = [
      path.join(root, 'devicemapper', 'devicemapper', 'metadata'),
      path.join(root, 'devicemapper', 'devicemapper', 'data'),
    ];
    if (name === 'directlvm') {
      execFileSync('tar', ['--sparse', '-xzf', path.join(outDir, 'directlvm-disk.tar.gz'), '-C', root]);
      poolArgs = ['--image', path.join(root, 'disk.img')];
      evidenceFiles = [path.join(root, 'disk.img')];
    }
    const evidence = evidenceFiles.map(hashFile);

    const list = await json('deleted', '--root', root, ...poolArgs);
    expect(list.liveDeviceIds).not.toContain(deviceId);
    const dev = list.devices.find((d: any) => d.deviceId === deviceId);
    expect(dev, JSON.stringify(list.devices.map((d: any) => d.deviceId))).toBeTruthy();
    for (const d of list.devices) expect(list.liveDeviceIds).not.toContain(d.deviceId);
    expect(dev.owner).toBe('unknown');
    expect(dev.details.length).toBeGreaterThan(0);
    const newest = dev.versions.find((v: any) => v.newest);
    expect(newest.mappedBlocks).toBeGreaterThan(0);
    // the container is a snapshot of its image layer: the blocks it did not write are still the layer's
    expect(newest.blocks.shared).toBeGreaterThan(0);
    expect(newest.blocks.reused).toBe(0);

    const img = path.join(tmp, `${name}.img`);
    const ex = await json(
      'export',
      '--deleted',
      '--device-id',
      String(deviceId),
      '--root',
      root,
      ...poolArgs,
      '--size',
      sizeText,
      img,
    );
    expect(ex.sha256).toBe(hashFile(img));
    expect(ex.sizeFrom).toBe('option');
    const bytes = fs.readFileSync(img);
    const has = bytes.includes(Buffer.from(`${marker} (${name})`));
    if (name !== 'discard') {
      expect(newest.blocks.free).toBeGreaterThan(0);
      expect(has).toBe(true);
      if (process.getuid?.() === 0 && spawnSync('losetup', ['--version'], { stdio: 'ignore' }).status === 0) {
        // Docker's devicemapper layout: the container's root is rootfs/ inside the thin device's file system
        expect(readFromImage(img, 'ext4', 'rootfs/data/evidence.txt')).toBe(`${marker} (${name})\n`);
        const mnt = fs.mkdtempSync(path.join(tmp, 'mnt-'));
        const loop = execFileSync('losetup', ['--find', '--show', '--read-only', img], { encoding: 'utf8' }).trim();
        try {
          execFileSync('mount', ['-t', 'ext4', '-o', 'ro,noload', loop, mnt]);
          try {
            expect(hashFile(path.join(mnt, 'rootfs', 'data', 'blob'))).toBe(get(name, 'blob-sha256'));
          } finally {
            execFileSync('umount', [mnt]);
          }
        } finally {
          execFileSync('losetup', ['-d', loop]);
        }
      }
    } else {
      // Docker discarded the device before deleting it (the discard also unmapped its blocks in the newer trees):
      // in every version, the blocks that are free now read as zeros — reported discarded, none as intact
      expect(Math.max(...dev.versions.map((v: any) => v.blocks.discarded))).toBeGreaterThan(0);
      for (const v of dev.versions) expect(v.blocks.free, `version ${v.version}`).toBe(0);
      expect(ex.blocks.intact).toBe(ex.blocks.shared);
      expect(has).toBe(false);
    }
    expect(evidenceFiles.map(hashFile)).toEqual(evidence);
    figures.push(
      `${name}: device ${deviceId}, ${dev.versions.length} versions, newest ${JSON.stringify(newest.blocks)}`,
    );
  }
  return figures;
}
