import { describe, expect, it } from 'vitest';
import {
  parseInfo,
  parseLs,
  parseTable,
  parseThinPoolStatus,
  parseThinPoolTable,
  parseThinStatus,
  parseThinTable,
} from '../../src/dm/dmsetup.js';
import { probeFsBuffer, readOnlyMountOptions } from '../../src/dm/fsprobe.js';
import { parseMountInfo } from '../../src/dm/mountinfo.js';

// Lines as a real 6.1 kernel (dm-thin 1.22) printed them in the VM walkthrough (dmsetup status/table without a name).
const POOL_STATUS = 'pool: 0 20971520 thin-pool 0 2586/25600 530/163840 - rw discard_passdown queue_if_no_space - 1024';
const POOL_TABLE = 'pool: 0 20971520 thin-pool 7:1 7:0 128 65536 1 skip_block_zeroing';

describe('dmsetup parsers', () => {
  it('ls, in both major:minor spellings', () => {
    expect(parseLs('docker-0:33-25-pool\t(254:0)\npool\t(254, 1)\n')).toEqual([
      { name: 'docker-0:33-25-pool', major: 254, minor: 0 },
      { name: 'pool', major: 254, minor: 1 },
    ]);
    expect(parseLs('No devices found\n')).toEqual([]);
  });

  it('thin-pool status: transaction id, metadata and data blocks, held root, mode, flags', () => {
    const [line] = parseTable(POOL_STATUS);
    expect(line).toMatchObject({ name: 'pool', start: 0, length: 20971520, target: 'thin-pool' });
    expect(parseThinPoolStatus(line!.args)).toEqual({
      fail: false,
      transactionId: 0,
      usedMetadataBlocks: 2586,
      totalMetadataBlocks: 25600,
      usedDataBlocks: 530,
      totalDataBlocks: 163840,
      heldMetadataRoot: null,
      mode: 'rw',
      discardPassdown: true,
      errorIfNoSpace: false,
      needsCheck: false,
      metadataLowWatermark: 1024,
    });
  });

  it('thin-pool status: held root, out of data space, needs_check, read-only, Fail', () => {
    const s = parseThinPoolStatus(
      '12 100/200 300/300 17 out_of_data_space no_discard_passdown error_if_no_space needs_check 1024'.split(' '),
    );
    expect(s).toMatchObject({
      heldMetadataRoot: 17,
      mode: 'out_of_data_space',
      discardPassdown: false,
      errorIfNoSpace: true,
      needsCheck: true,
    });
    expect(parseThinPoolStatus('3 1/2 3/4 - ro discard_passdown queue_if_no_space - 1024'.split(' ')).mode).toBe('ro');
    expect(parseThinPoolStatus(['Fail'])).toMatchObject({ fail: true, mode: 'fail' });
    expect(() => parseThinPoolStatus(['x'])).toThrow(/cannot parse thin-pool status/);
  });

  it('thin status: mapped sectors and highest, nothing mapped, Fail', () => {
    expect(parseThinStatus(['67584', '2097151'])).toEqual({
      fail: false,
      mappedSectors: 67584,
      highestMappedSector: 2097151,
    });
    expect(parseThinStatus(['0', '-'])).toEqual({ fail: false, mappedSectors: 0, highestMappedSector: null });
    expect(parseThinStatus(['Fail']).fail).toBe(true);
  });

  it('tables: thin-pool and thin', () => {
    const [pool] = parseTable(POOL_TABLE);
    expect(parseThinPoolTable(pool!.args)).toEqual({
      metadataDev: '7:1',
      dataDev: '7:0',
      blockSectors: 128,
      lowWaterMark: 65536,
      features: ['skip_block_zeroing'],
    });
    const [thin] = parseTable('0 2097152 thin 254:0 1');
    expect(thin!.name).toBeNull();
    expect(parseThinTable(thin!.args)).toEqual({ poolDev: '254:0', deviceId: 1, externalOrigin: null });
    expect(() => parseTable('garbage here')).toThrow(/cannot parse table line/);
  });

  it('info', () => {
    const text = [
      'Name:              snap',
      'State:             ACTIVE (READ-ONLY)',
      'Read Ahead:        256',
      'Tables present:    LIVE',
      'Open count:        1',
      'Event number:      0',
      'Major, minor:      254, 2',
      'Number of targets: 1',
      '',
    ].join('\n');
    expect(parseInfo(text)).toEqual({
      name: 'snap',
      state: 'ACTIVE',
      readOnly: true,
      tablesPresent: 'LIVE',
      openCount: 1,
      major: 254,
      minor: 2,
      targets: 1,
      uuid: null,
    });
  });
});

describe('filesystem probe', () => {
  it('recognises xfs, ext4 and btrfs by magic', () => {
    const b = Buffer.alloc(0x10048);
    expect(probeFsBuffer(b)).toBeNull();
    b.write('XFSB', 0, 'latin1');
    expect(probeFsBuffer(b)).toBe('xfs');
    const e = Buffer.alloc(0x10048);
    e[0x438] = 0x53;
    e[0x439] = 0xef;
    expect(probeFsBuffer(e)).toBe('ext4');
    const t = Buffer.alloc(0x10048);
    t.write('_BHRfS_M', 0x10040, 'latin1');
    expect(probeFsBuffer(t)).toBe('btrfs');
    expect(readOnlyMountOptions('xfs')).toBe('ro,norecovery,nouuid');
    expect(readOnlyMountOptions('ext4')).toBe('ro,noload');
  });
});

describe('mountinfo', () => {
  it('parses fields and unescapes spaces', () => {
    const text =
      '36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n' +
      '40 36 254:2 / /tmp/ev ro,relatime - xfs /dev/mapper/snap ro,nouuid,norecovery\n';
    const m = parseMountInfo(text);
    expect(m).toHaveLength(2);
    expect(m[0]).toMatchObject({ mountPoint: '/mnt/with space', fsType: 'ext3', source: '/dev/root', majMin: '98:0' });
    expect(m[1]).toMatchObject({
      mountPoint: '/tmp/ev',
      fsType: 'xfs',
      source: '/dev/mapper/snap',
      options: 'ro,relatime',
    });
  });
});
