// `dminspect --version` under Node: version, runtime, build, CRC implementation (the binary's is checked in test/binary).
import { describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';
import { VERSION } from '../../src/cli/main.js';
import { binaryBuild, isStandaloneBinary } from '../../src/util/build-info.js';

describe('--version', () => {
  it('says node, the node package and the native CRC', async () => {
    expect(binaryBuild()).toBeNull();
    expect(isStandaloneBinary()).toBe(false);
    const r = await cli('--version');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `dminspect ${VERSION}\nruntime: node ${process.version}\nbuild: node package\ncrc32c: native (@node-rs/crc32)\n`,
    );
    expect((await cli('-V')).stdout).toBe(r.stdout);
  });
});
