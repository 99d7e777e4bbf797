/**
 * What `dminspect --version` says: the version, the runtime, the build. `npm run build:binary` (scripts/build-binary.js)
 * replaces DMINSPECT_BUILD with a string literal ("binary linux-x64 baseline, <git sha>") when it compiles the
 * single-file binary; under Node it is undefined and the build is "node package".
 */
import { crcImplementation } from './crc32c.js';

declare const DMINSPECT_BUILD: string | undefined;

export const VERSION = '0.1.0';

/** The build string, or null when running from the npm package under Node. */
export function binaryBuild(): string | null {
  return typeof DMINSPECT_BUILD === 'string' ? DMINSPECT_BUILD : null;
}

/** True in the single-file binary: process.execPath is dminspect itself, not node. */
export function isStandaloneBinary(): boolean {
  return binaryBuild() !== null;
}

export function runtimeName(): string {
  return process.versions.bun !== undefined ? `bun v${process.versions.bun}` : `node ${process.version}`;
}

export function versionText(version: string = VERSION): string {
  return [
    `dminspect ${version}`,
    `runtime: ${runtimeName()}`,
    `build: ${binaryBuild() ?? 'node package'}`,
    `crc32c: ${crcImplementation() === 'native' ? 'native (@node-rs/crc32)' : 'portable (JavaScript slice-by-8)'}`,
  ].join('\n');
}
