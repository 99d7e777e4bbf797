/**
 * `dminspect deleted` / `export --deleted` on the committed kernel-written capture fixtures/captures/deleted-raw/
 * (made in a QEMU guest by test/kernel/guest/deleted-raw.sh; re-made by make-capture.sh there): thin device 1 was
 * deleted by the kernel; its newest stale version exports with the sha256 the kernel read before the delete, and
 * after a new device took some freed blocks, exactly those are reported reused. The same checks run on a fresh
 * guest in test/kernel/deleted.test.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO, tmpDir } from '../support/cli.js';
import { checkDeletedRaw, parseMarkers } from '../support/deleted-raw.js';

const CAPTURE = path.join(REPO, 'fixtures', 'captures', 'deleted-raw');

describe('deleted devices on a kernel-written capture', () => {
  const tmp = tmpDir('dminspect-deleted-');
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('lists thin 1 (not the live 2 / 3), exports its newest version byte-exact, reports reused blocks', async () => {
    const markers = parseMarkers(fs.readFileSync(path.join(CAPTURE, 'markers.txt'), 'utf8'));
    const f = await checkDeletedRaw(CAPTURE, markers, tmp);
    expect(f.exportSha256).toBe(markers.get('sha256-1')?.[0]);
  }, 60_000);
});
