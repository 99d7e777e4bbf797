/**
 * `dminspect deleted` / `export --deleted` on the committed capture fixtures/captures/docker-deleted/ of a real
 * dockerd 20.10 (QEMU guest, test/kernel/guest/docker-deleted.sh; re-made by make-capture.sh there): a container
 * removed with `docker rm` on loop-lvm with dm.blkdiscard=false and on direct-lvm (read through LVM from the disk
 * image) is listed and its export holds its files; on loop-lvm's default (blkdiscard on) its blocks are reported
 * discarded. The same checks run on a fresh guest in test/kernel/docker-deleted.test.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { REPO, tmpDir } from '../support/cli.js';
import { parseMarkers } from '../support/deleted-raw.js';
import { checkDockerDeleted } from '../support/docker-deleted.js';

const CAPTURE = path.join(REPO, 'fixtures', 'captures', 'docker-deleted');

describe.skipIf(!fs.existsSync(path.join(CAPTURE, 'markers.txt')))(
  'deleted containers on a real dockerd capture',
  () => {
    const tmp = tmpDir('dminspect-docker-deleted-');
    afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it('loop-lvm without discard and direct-lvm: listed, exported with the files; loop-lvm default: discarded', async () => {
      const m = parseMarkers(fs.readFileSync(path.join(CAPTURE, 'markers.txt'), 'utf8'));
      await checkDockerDeleted(CAPTURE, m, m.get('marker')![0]!, tmp);
    }, 120_000);
  },
);
