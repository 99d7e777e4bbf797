/**
 * The real prometheus-node-exporter, only its textfile collector, reading the directory dminspect writes; the
 * dminspect series are read back from its /metrics over HTTP and compared with the pool report.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEXTFILE_NAME } from '../../src/audit/metrics.js';
import { cli, cliJson, SAMPLE } from '../support/cli.js';
import {
  NODE_EXPORTER,
  NODE_EXPORTER_SKIP,
  parseExposition,
  scrape,
  series,
  startNodeExporter,
  tmpDir,
  value,
  type Exporter,
} from './helpers.js';

if (!NODE_EXPORTER) console.warn(NODE_EXPORTER_SKIP);

describe.skipIf(!NODE_EXPORTER)('node_exporter textfile collector', () => {
  const dir = tmpDir('dminspect-textfile-');
  let exporter: Exporter | null = null;

  beforeAll(async () => {
    exporter = await startNodeExporter(dir);
  });

  afterAll(async () => {
    await exporter?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('only the textfile collector runs', async () => {
    const p = parseExposition(await scrape(exporter!.url));
    const collectors = series(p, 'node_scrape_collector_success').map((s) => s.labels.collector);
    expect(collectors).toEqual(['textfile']);
  });

  it('serves the dminspect series with the pool report’s values', async () => {
    const r = await cli('pool', '--root', SAMPLE, '--textfile', dir);
    expect(r.code).toBe(0);
    const rep = await cliJson('pool', '--root', SAMPLE);
    const p = parseExposition(await scrape(exporter!.url));
    expect(value(p, 'node_textfile_scrape_error')).toBe(0);
    expect(series(p, 'node_textfile_mtime_seconds').map((s) => path.basename(s.labels.file ?? ''))).toEqual([
      TEXTFILE_NAME,
    ]);
    const pool = { pool: rep.poolName };
    expect(value(p, 'dminspect_up', pool)).toBe(1);
    expect(value(p, 'dminspect_pool_data_bytes', pool)).toBe(rep.data.totalBytes);
    expect(value(p, 'dminspect_pool_data_used_bytes', pool)).toBe(rep.data.usedBytes);
    expect(value(p, 'dminspect_pool_metadata_bytes', pool)).toBe(rep.metadata.totalBytes);
    expect(value(p, 'dminspect_pool_metadata_used_bytes', pool)).toBe(rep.metadata.usedBytes);
    expect(value(p, 'dminspect_pool_transaction_id', pool)).toBe(rep.transactionId);
    expect(value(p, 'dminspect_pool_needs_check', pool)).toBe(rep.needsCheck ? 1 : 0);
    expect(series(p, 'dminspect_device_mapped_bytes')).toHaveLength(rep.devices.length);
    for (const d of rep.devices) {
      const l = { device_id: String(d.deviceId) };
      expect(value(p, 'dminspect_device_mapped_bytes', l), `device ${d.deviceId}`).toBe(d.mappedBytes);
      expect(value(p, 'dminspect_device_exclusive_bytes', l), `device ${d.deviceId}`).toBe(d.exclusiveBytes);
    }
    expect(series(p, 'dminspect_device_exclusive_bytes', { device_id: '6' })[0]!.labels).toEqual({
      ...pool,
      device_id: '6',
      role: 'container',
      container: 'web',
      container_id: '3edafbdfe8db',
    });
    expect(value(p, 'dminspect_findings', { kind: 'orphan-device', severity: 'warning' })).toBe(
      rep.findings.filter((f: { kind: string }) => f.kind === 'orphan-device').length,
    );
    expect(value(p, 'dminspect_findings', { kind: 'needs-check', severity: 'critical' })).toBe(0);
    const text = fs.readFileSync(path.join(dir, TEXTFILE_NAME), 'utf8');
    const mine = parseExposition(text);
    expect(value(p, 'dminspect_last_success_timestamp_seconds')).toBe(
      value(mine, 'dminspect_last_success_timestamp_seconds'),
    );
    expect(value(p, 'dminspect_run_duration_seconds')).toBe(value(mine, 'dminspect_run_duration_seconds'));
  });

  it('after a failed run it serves dminspect_up 0 with the error and the last success carried over', async () => {
    const ok = await cli('pool', '--root', SAMPLE, '--textfile', dir);
    expect(ok.code).toBe(0);
    const last = value(parseExposition(await scrape(exporter!.url)), 'dminspect_last_success_timestamp_seconds');
    const bad = tmpDir('dminspect-badroot-');
    fs.cpSync(SAMPLE, bad, { recursive: true });
    fs.truncateSync(path.join(bad, 'devicemapper/devicemapper/metadata'), 1000); // shorter than the superblock
    const r = await cli('pool', '--root', bad, '--textfile', dir);
    expect(r.code).toBeGreaterThan(0);
    const p = parseExposition(await scrape(exporter!.url));
    expect(value(p, 'node_textfile_scrape_error')).toBe(0);
    expect(series(p, 'dminspect_up').map((s) => [s.labels.error, s.value])).toEqual([['BAD_INPUT', 0]]);
    expect(value(p, 'dminspect_last_success_timestamp_seconds')).toBe(last);
    expect(series(p, 'dminspect_pool_data_bytes')).toEqual([]);
  });
});
