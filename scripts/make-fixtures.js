#!/usr/bin/env node
// Re-makes the committed sample Docker roots under fixtures/. Run: npm run fixtures
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildV1Root,
  buildV2Root,
  LEGACY_SPEC,
  poolXmlFor,
  SAMPLE_POOL,
  SAMPLE_SPEC,
  writePoolMetadata,
} from './docker-root-builder.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
for (const [name, build, spec] of [
  ['sample', buildV2Root, SAMPLE_SPEC],
  ['legacy-v1', buildV1Root, LEGACY_SPEC],
]) {
  const dir = path.join(top, name);
  fs.rmSync(dir, { recursive: true, force: true });
  const result = build(dir, spec);
  if (name === 'sample') writePoolMetadata(dir, poolXmlFor(result, SAMPLE_POOL));
  console.log(`wrote ${path.relative(process.cwd(), dir)}`);
}
