/**
 * Identifiers found in Docker roots, validated before they are used to build a path. Anything that could
 * climb out of the Docker root (`..`, `/`, NUL) is rejected here, whatever the caller.
 */
import { DmiError } from '../errors.js';

export const HEX64 = /^[a-f0-9]{64}$/;
/** A devicemapper hash as the layer store makes them (`layer/filestore.go`): 64 hex, optionally `-init`. */
export const DEVICE_HASH = /^[a-f0-9]{64}(-init)?$/;
/** What a user may type to name a container: an id prefix or a Docker name ([a-zA-Z0-9][a-zA-Z0-9_.-]*). */
const REF = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function isHex64(s: string): boolean {
  return HEX64.test(s);
}

export function isDeviceHash(s: string): boolean {
  return DEVICE_HASH.test(s);
}

/** A name safe to join onto a directory: no separators, not `.` or `..`, no NUL. */
export function isSafeName(s: string): boolean {
  return s.length > 0 && s.length <= 255 && s !== '.' && s !== '..' && !/[/\\\0]/.test(s);
}

/** Validates a user-typed container or device reference; a path-like ref is a usage error. */
export function checkRef(ref: string, what = 'reference'): string {
  if (!REF.test(ref) || ref.includes('..')) {
    throw new DmiError('USAGE', `invalid ${what} ${JSON.stringify(ref)}: expected an id, an id prefix or a name`);
  }
  return ref;
}

/** Strips `sha256:` from a digest-style id and checks it is 64 hex. */
export function parseDigest(value: string, where: string): string {
  const v = value.startsWith('sha256:') ? value.slice(7) : value;
  if (!isHex64(v))
    throw new DmiError('BAD_INPUT', `${where}: ${JSON.stringify(value.slice(0, 80))} is not a sha256 id`, {
      path: where,
    });
  return v;
}
