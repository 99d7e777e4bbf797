/**
 * pickJson (docker/json-pick.ts) reads a few fields of a config.v2.json or a device record from its bytes instead of
 * JSON.parse of the whole text. It must never answer anything JSON.parse would not: for every document it accepts,
 * the picked fields equal what JSON.parse gives; every document JSON.parse rejects, it rejects (null: the caller
 * parses the text, with the old error). Checked on real configs and records (fixtures/sample), on hand-made unusual
 * ones, on every truncation and on thousands of byte mutations; then through the file readers, whose records and
 * one-line errors must equal those of the old path (parseJson of the text, then parseContainer / parseDeviceRecord).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseContainer, readContainer } from '../../src/docker/containers.js';
import { parseJson } from '../../src/docker/files.js';
import { compilePick, pickJson, type CompiledPick, type PickSpec } from '../../src/docker/json-pick.js';
import { parseDeviceRecord, readDeviceRecord } from '../../src/docker/records.js';
import { SAMPLE, tmpDir } from '../support/cli.js';

const CONTAINER: PickSpec = {
  ID: true,
  Name: true,
  Image: true,
  Created: true,
  Driver: true,
  Config: { Image: true },
  State: {
    Running: true,
    Paused: true,
    Restarting: true,
    RemovalInProgress: true,
    Dead: true,
    Pid: true,
    ExitCode: true,
    StartedAt: true,
    FinishedAt: true,
  },
};
const DEVICE: PickSpec = { device_id: true, size: true, transaction_id: true, initialized: true, deleted: true };
const compiled = new Map<PickSpec, CompiledPick>([
  [CONTAINER, compilePick(CONTAINER)],
  [DEVICE, compilePick(DEVICE)],
]);

/** What the fields are after JSON.parse: the reference pickJson must equal. */
function reference(v: unknown, spec: PickSpec): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const o = v as Record<string, unknown>;
  for (const [k, sub] of Object.entries(spec)) {
    if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
    const x = o[k];
    out[k] = sub !== true && typeof x === 'object' && x !== null && !Array.isArray(x) ? reference(x, sub) : x;
  }
  return out;
}

/** pickJson against JSON.parse on `bytes`: same fields when it answers; null whenever JSON.parse throws. */
function agree(bytes: Buffer, spec: PickSpec): 'picked' | 'left' | 'invalid' {
  const picked = pickJson(bytes, compiled.get(spec)!);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    expect(picked, `accepted invalid JSON ${JSON.stringify(bytes.toString('latin1').slice(0, 200))}`).toBeNull();
    return 'invalid';
  }
  if (picked === null) return 'left';
  expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)).toBe(true);
  expect(picked).toEqual(reference(parsed, spec));
  // toEqual treats -0 as 0 loosely in some versions: compare numbers by Object.is too
  for (const k of Object.keys(picked))
    if (typeof picked[k] === 'number') expect(Object.is(picked[k], (parsed as Record<string, unknown>)[k])).toBe(true);
  return 'picked';
}

const sampleConfigs = fs
  .readdirSync(path.join(SAMPLE, 'containers'))
  .map((id) => fs.readFileSync(path.join(SAMPLE, 'containers', id, 'config.v2.json')));
const sampleRecords = fs
  .readdirSync(path.join(SAMPLE, 'devicemapper', 'metadata'))
  .filter((n) => /^[0-9a-f]{64}(-init)?$|^base$/.test(n))
  .map((n) => fs.readFileSync(path.join(SAMPLE, 'devicemapper', 'metadata', n)));

const ID = 'ab'.repeat(32);
const cfg = (body: string) => Buffer.from(`{"ID":"${ID}",${body}}`);

describe('pickJson', () => {
  it('reads every sample config and device record as JSON.parse does', () => {
    expect(sampleConfigs.length).toBeGreaterThan(2);
    expect(sampleRecords.length).toBeGreaterThan(2);
    for (const b of sampleConfigs) expect(agree(b, CONTAINER)).toBe('picked');
    for (const b of sampleRecords) expect(agree(b, DEVICE)).toBe('picked');
  });

  it('takes only the top-level keys and the asked-for members of nested objects, the last of duplicates', () => {
    const b = cfg(
      '"Name":"/first","Config":{"ID":"not me","Image":"img:1","State":{"Running":true}},' +
        '"State":{"Running":false,"Pid":1,"State":{"Pid":99}},"Labels":{"Name":"nested","Image":[{"Image":"x"}]},' +
        '"Name":"/second","State":{"Pid":7,"ExitCode":-0,"Dead":true}',
    );
    expect(agree(b, CONTAINER)).toBe('picked');
    expect(pickJson(b, compiled.get(CONTAINER)!)).toEqual({
      ID,
      Name: '/second',
      Config: { Image: 'img:1' },
      State: { Pid: 7, ExitCode: -0, Dead: true },
    });
    // an object replaced by a scalar, and back
    expect(agree(cfg('"State":{"Running":true},"State":null'), CONTAINER)).toBe('picked');
    expect(agree(cfg('"State":"up","State":{"Pid":3}'), CONTAINER)).toBe('picked');
    expect(agree(cfg('"Config":5'), CONTAINER)).toBe('picked');
  });

  it('decodes names in UTF-8 as decoding the file does, invalid bytes included', () => {
    for (const name of ['/čaj-☕', '/名前', '/emoji-😀', '/\u00e9'])
      expect(agree(cfg(`"Name":${JSON.stringify(name)}`), CONTAINER)).toBe('picked');
    const raw = Buffer.concat([
      cfg('"Name":"/a').subarray(0, -1),
      Buffer.from([0xff, 0xc3, 0x28, 0xe2, 0x82]),
      Buffer.from('"}'),
    ]);
    expect(agree(raw, CONTAINER)).toBe('picked');
    expect(pickJson(raw, compiled.get(CONTAINER)!)!.Name).toBe(JSON.parse(raw.toString('utf8')).Name);
  });

  it('leaves escapes in asked-for strings and keys to JSON.parse, and reads past them elsewhere', () => {
    expect(agree(cfg('"Name":"/a\\"b"'), CONTAINER)).toBe('left');
    expect(agree(cfg('"Name":"/a\\u0041"'), CONTAINER)).toBe('left');
    expect(agree(Buffer.from(`{"\\u0049D":"${ID}"}`), CONTAINER)).toBe('left'); // "\u0049D" is "ID"
    expect(agree(cfg('"Path":"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00","Name":"/x"'), CONTAINER)).toBe(
      'picked',
    );
    for (const bad of ['\\x41', '\\u00g1', '\\u00', '\\', '\\U0041', "\\'"])
      // invalid escapes
      expect(agree(cfg(`"Path":"${bad}"`), CONTAINER)).toBe('invalid');
  });

  it('leaves arrays and objects where a value was asked for to JSON.parse', () => {
    expect(agree(cfg('"Name":["/a"]'), CONTAINER)).toBe('left');
    expect(agree(cfg('"Image":{"a":1}'), CONTAINER)).toBe('left');
    expect(agree(cfg('"State":[1]'), CONTAINER)).toBe('left');
  });

  it('reads numbers and literals as JSON.parse, and rejects what it rejects', () => {
    for (const v of [
      '0',
      '-0',
      '7',
      '-12',
      '1.5',
      '1.5E+3',
      '2e-2',
      '1e400',
      '-1e400',
      '123456789012345678901',
      'true',
      'false',
      'null',
    ])
      expect(agree(cfg(`"State":{"Pid":${v},"ExitCode":${v}}`), CONTAINER), v).toBe('picked');
    for (const v of [
      '01',
      '-',
      '+1',
      '1.',
      '.5',
      '1e',
      '1e+',
      '0x10',
      'tru',
      'nul',
      'falsee',
      'True',
      'NaN',
      'Infinity',
      '--1',
    ])
      expect(agree(cfg(`"State":{"Pid":${v}}`), CONTAINER), v).toBe('invalid');
  });

  it('rejects what is not one JSON object, or is not JSON', () => {
    const cases = [
      '',
      ' ',
      '[]',
      '"x"',
      '5',
      'null',
      `{"ID":"${ID}"} x`,
      `{"ID":"${ID}"}}`,
      '{,}',
      '{"a":1,}',
      '{"a" 1}',
      '{"a":1 "b":2}',
      '[1,]',
      '{"a":[1 2]}',
      '\ufeff{}',
      '{"a":"\u0001"}',
      '{"a":"tab\there"}',
      "{'a':1}",
      '{a:1}',
    ];
    for (const c of cases) expect(agree(Buffer.from(c), CONTAINER), JSON.stringify(c)).not.toBe('picked');
    for (const c of ['{}', ' {} ', '\t{\r\n}\n', '{"a":[]}', '{"a":{}}', '{"a":[[],{},[{"b":[]}]]}'])
      expect(agree(Buffer.from(c), CONTAINER), c).toBe('picked');
  });

  it('answers null for deep nesting without exhausting the stack (JSON.parse takes it)', () => {
    const deep = Buffer.from(`{"a":${'['.repeat(100000)}${']'.repeat(100000)}}`);
    expect(pickJson(deep, compiled.get(CONTAINER)!)).toBeNull();
    expect(agree(deep, CONTAINER)).toBe('left');
    expect(agree(Buffer.from(`{"a":${'['.repeat(200)}${']'.repeat(200)},"Name":"/n"}`), CONTAINER)).toBe('picked');
  });

  it('rejects every truncation of a real config and record', () => {
    for (const [b, spec] of [
      [sampleConfigs[0]!, CONTAINER],
      [sampleRecords[0]!, DEVICE],
    ] as const) {
      const whole = b.toString('utf8').trimEnd();
      for (let len = 0; len < Buffer.byteLength(whole); len++)
        expect(agree(Buffer.from(whole).subarray(0, len), spec)).not.toBe('picked');
    }
  });

  it('agrees with JSON.parse on thousands of single-byte mutations of a real config and record', () => {
    const bytes = [
      0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x01, 0x20, 0x0a, 0x30, 0x2d, 0x65, 0x78, 0x74, 0x6e, 0xff, 0xc3,
    ];
    let rng = 12345;
    const next = () => (rng = (rng * 1103515245 + 12345) & 0x7fffffff);
    const seen = { picked: 0, left: 0, invalid: 0 };
    for (const [b, spec] of [
      [sampleConfigs[1]!, CONTAINER],
      [sampleRecords[1]!, DEVICE],
    ] as const) {
      for (let t = 0; t < 3000; t++) {
        const m = Buffer.from(b);
        const at = next() % m.length;
        m[at] = bytes[next() % bytes.length]!;
        if (t % 3 === 0) m[next() % m.length] = bytes[next() % bytes.length]!;
        seen[agree(m, spec)]++;
      }
    }
    expect(seen.picked).toBeGreaterThan(100);
    expect(seen.invalid).toBeGreaterThan(1000);
  });
});

/** The outcome of the old path (parse the text whole, then check): the record, or the error's code and message. */
function outcome(fn: () => unknown): unknown {
  try {
    return fn();
  } catch (e) {
    const err = e as { code?: string; message: string };
    return { error: err.code, message: err.message };
  }
}

describe('the readers that pick: same records, same one-line errors as parsing the text whole', () => {
  const root = tmpDir('dminspect-json-pick-');
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, 'containers', ID);
  fs.mkdirSync(dir, { recursive: true });
  const meta = path.join(root, 'devicemapper', 'metadata');
  fs.mkdirSync(meta, { recursive: true });
  const file = path.join(dir, 'config.v2.json');
  const HASH = 'cd'.repeat(32);
  const record = path.join(meta, HASH);

  const containerCases: string[] = [
    `{"ID":"${ID}","Name":"/ok","State":{"Running":true,"StartedAt":"2024-01-01T00:00:00Z","Pid":5}}`,
    `{"ID":"${'ef'.repeat(32)}"}`, // wrong ID
    `{"ID":"${ID.toUpperCase()}"}`,
    `{"ID":5}`,
    `{"ID":{"x":1}}`,
    `{"ID":"${ID}","Name":"/a\\u00e9","State":{"StartedAt":"0001-01-01T00:00:00Z","ExitCode":3}}`,
    `{"ID":"${ID}","Image":"sha256:${'12'.repeat(32)}","Config":{"Image":"x:1"},"Created":"2020-01-01T00:00:00Z"}`,
    `{"ID":"${ID}","State":{"Running":true,"Paused":true}}`,
    `{"ID":"${ID}","State":{"Dead":true},"State":{"RemovalInProgress":true}}`,
    `{"ID":"${ID}","Name":"/čaj"}`,
    `{"ID":"${ID}", "Name": }`, // corrupt
    `{"ID":"${ID}","Na`, // truncated
    '',
    '   \n',
    '[]',
    'null',
    `\ufeff{"ID":"${ID}"}`,
    `{"ID":"${ID}","Big":"${'x'.repeat(70 * 1024)}","Name":"/big"}`, // larger than the read buffer
    `{"ID":"${ID}","Big":"${'x'.repeat(70 * 1024)}","Name":"/big"`, // larger and truncated
  ];

  it('readContainer: configs good and bad', () => {
    for (const text of containerCases) {
      fs.writeFileSync(file, text);
      const old = outcome(() => parseContainer(parseJson(text, file), file, 'v2', ID));
      expect(
        outcome(() => readContainer(root, ID)),
        text.slice(0, 120),
      ).toEqual(old);
    }
    // invalid UTF-8 in the name: the same replacement characters as decoding the whole file
    const raw = Buffer.concat([
      Buffer.from(`{"ID":"${ID}","Name":"/x`),
      Buffer.from([0xff, 0xe2, 0x82]),
      Buffer.from('"}'),
    ]);
    fs.writeFileSync(file, raw);
    expect(readContainer(root, ID)).toEqual(parseContainer(parseJson(raw.toString('utf8'), file), file, 'v2', ID));
  });

  it('readDeviceRecord: records good and bad', () => {
    const cases = [
      '{"device_id":6,"size":10737418240,"transaction_id":7,"initialized":false,"deleted":false}',
      '{"device_id":6,"size":10,"transaction_id":7,"initialized":true}',
      '{"device_id": 6, "size": }',
      '{"device_id": 6, "si',
      '',
      '{"device_id":"6","size":1}',
      '{"device_id":-1,"size":1}',
      '{"device_id":16777216,"size":1}',
      '{"device_id":1.5,"size":1}',
      '{"device_id":1,"size":1e400}',
      '{"device_id":1,"size":-0}',
      '{"device_id":1,"size":1,"deleted":"yes"}',
      '{"device_id":1,"size":1,"initialized":null}',
      '{"device_id":1,"size":[1]}',
      '{"size":1}',
      '{"device_id":1,"size":1,"device_id":2}',
    ];
    for (const text of cases) {
      fs.writeFileSync(record, text);
      const old = outcome(() => parseDeviceRecord(parseJson(text, record), HASH, record));
      expect(
        outcome(() => readDeviceRecord(root, HASH)),
        text,
      ).toEqual(old);
    }
  });
});
