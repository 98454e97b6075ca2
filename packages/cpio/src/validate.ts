import { CpioError } from './errors.ts';
import {
  CPIO_MAX_FILE_SIZE,
  CPIO_MAX_NAME_COMPONENT,
  CPIO_MAX_PATH_BYTES,
  CPIO_TRAILER_NAME,
  S_IFMT,
  TYPE_BITS,
} from './newc.ts';
import type { CpioEntry, CpioPath } from './types.ts';

const encoder = new TextEncoder();
const displayDecoder = new TextDecoder('utf-8', { fatal: false });
const TRAILER_BYTES = encoder.encode(CPIO_TRAILER_NAME);
// With the u flag a valid surrogate pair is one code point, so only lone halves match.
const LONE_SURROGATE = /\p{Cs}/u;

/** A path or target for error messages: quoted, control characters escaped, shortened. */
export function describePath(path: CpioPath): string {
  const text = typeof path === 'string' ? path : displayDecoder.decode(path);
  const short = text.length > 120 ? `${text.slice(0, 60)}…${text.slice(-40)}` : text;
  return JSON.stringify(short);
}

function toBytes(value: CpioPath, what: string): Uint8Array {
  if (typeof value === 'string') {
    // Most paths are short ASCII; a plain loop beats TextEncoder's per-call cost for them.
    const len = value.length;
    if (len <= 512) {
      const out = new Uint8Array(len);
      let i = 0;
      for (; i < len; i++) {
        const c = value.charCodeAt(i);
        if (c >= 0x80) break;
        out[i] = c;
      }
      if (i === len) return out;
    }
    if (LONE_SURROGATE.test(value)) {
      throw new CpioError(
        'IRB_CPIO_PATH_INVALID',
        `${what} ${describePath(value)} contains a lone UTF-16 surrogate and cannot be encoded as UTF-8; pass the exact bytes as a Uint8Array`,
      );
    }
    return encoder.encode(value);
  }
  if (value instanceof Uint8Array) return value;
  throw new CpioError(
    'IRB_CPIO_PATH_INVALID',
    `${what} must be a string or a Uint8Array, got ${typeof value}`,
  );
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Checks an archive path against the rules of the entry model and returns its bytes.
 * `.` alone names the root; `.` components elsewhere are harmless and kept as given.
 */
export function encodeArchivePath(path: CpioPath, what = 'path'): Uint8Array {
  const bytes = toBytes(path, what);
  const bad = (why: string, fix: string) =>
    new CpioError('IRB_CPIO_PATH_INVALID', `${what} ${describePath(path)} ${why}; ${fix}`);
  if (bytes.length === 0) throw bad('is empty', 'use "." for the archive root');
  if (bytes.length > CPIO_MAX_PATH_BYTES) {
    throw new CpioError(
      'IRB_CPIO_PATH_TOO_LONG',
      `${what} ${describePath(path)} is ${bytes.length} bytes; the Linux kernel skips names longer than ${CPIO_MAX_PATH_BYTES} bytes (PATH_MAX including the NUL), shorten it`,
    );
  }
  if (bytes.indexOf(0) !== -1) throw bad('contains a NUL byte', 'remove it');
  if (bytes[0] === 0x2f)
    throw bad('starts with "/"', 'archive paths are relative to the root, drop the leading "/"');
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x2f) {
      const len = i - start;
      if (len === 0) throw bad('has an empty component ("//" or a trailing "/")', 'remove the extra "/"');
      if (len === 2 && bytes[start] === 0x2e && bytes[start + 1] === 0x2e) {
        throw bad(
          'has a ".." component',
          'resolve it before packing; paths must stay inside the archive root',
        );
      }
      if (len > CPIO_MAX_NAME_COMPONENT) {
        throw new CpioError(
          'IRB_CPIO_PATH_TOO_LONG',
          `${what} ${describePath(path)} has a ${len}-byte component; Linux file names are at most ${CPIO_MAX_NAME_COMPONENT} bytes (NAME_MAX) and the kernel would skip it, shorten it`,
        );
      }
      start = i + 1;
    }
  }
  if (equalBytes(bytes, TRAILER_BYTES)) {
    throw bad('is the end-of-archive marker', 'readers would stop there; rename the file');
  }
  return bytes;
}

/** Checks a symlink target and returns its bytes. Targets may be absolute and contain `..`; they are never followed. */
export function encodeLinkTarget(target: CpioPath, path: CpioPath): Uint8Array {
  const what = `symlink target of ${describePath(path)}`;
  const bytes = toBytes(target, what);
  if (bytes.length === 0) {
    throw new CpioError(
      'IRB_CPIO_PATH_INVALID',
      `${what} is empty; Linux cannot create an empty symlink, give a target`,
    );
  }
  if (bytes.length > CPIO_MAX_PATH_BYTES) {
    throw new CpioError(
      'IRB_CPIO_PATH_TOO_LONG',
      `${what} is ${bytes.length} bytes; Linux refuses symlink targets longer than ${CPIO_MAX_PATH_BYTES} bytes, shorten it`,
    );
  }
  if (bytes.indexOf(0) !== -1) {
    throw new CpioError(
      'IRB_CPIO_PATH_INVALID',
      `${what} ${describePath(target)} contains a NUL byte; remove it`,
    );
  }
  return bytes;
}

/** Checks an integer field of the header format's 32-bit range (or a narrower `max`). */
export function checkUint(value: unknown, field: string, path: CpioPath, max = 0xffff_ffff): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new CpioError(
      'IRB_CPIO_FIELD_INVALID',
      `${field} of ${describePath(path)} is ${String(value)}; it must be an integer from 0 to ${max}`,
    );
  }
  return value;
}

/**
 * Full `st_mode` for an entry: the permission bits (incl. setuid, setgid, sticky) plus the
 * type bits of its kind. A mode that already carries type bits (e.g. from `stat`) is
 * accepted when they match the kind.
 */
export function entryMode(entry: CpioEntry): number {
  const { mode } = entry;
  const typeBits = TYPE_BITS[entry.type];
  if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o177777) {
    throw new CpioError(
      'IRB_CPIO_FIELD_INVALID',
      `mode of ${describePath(entry.path)} is ${String(mode)}; give the permission bits, 0 to 0o7777`,
    );
  }
  const given = mode & S_IFMT;
  if (given !== 0 && given !== typeBits) {
    throw new CpioError(
      'IRB_CPIO_FIELD_INVALID',
      `mode 0o${mode.toString(8)} of ${describePath(entry.path)} has file type bits that do not match type "${entry.type}"; pass only the permission bits`,
    );
  }
  return typeBits | (mode & 0o7777);
}

/** Checks a file size: an integer below 4 GiB. */
export function checkFileSize(size: unknown, path: CpioPath): number {
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
    throw new CpioError(
      'IRB_CPIO_FIELD_INVALID',
      `size of ${describePath(path)} is ${String(size)}; it must be the body length in bytes`,
    );
  }
  if (size > CPIO_MAX_FILE_SIZE) {
    throw new CpioError(
      'IRB_CPIO_FILE_TOO_LARGE',
      `${describePath(path)} is ${size} bytes; newc stores sizes in 32 bits, so files must be smaller than 4 GiB — leave it out or split it`,
    );
  }
  return size;
}

/** Checks that an entry has a known kind. */
export function checkType(entry: CpioEntry): void {
  if (entry === null || typeof entry !== 'object') {
    throw new CpioError('IRB_CPIO_FIELD_INVALID', `cpio entry must be an object, got ${String(entry)}`);
  }
  if (!Object.hasOwn(TYPE_BITS, entry.type)) {
    throw new CpioError(
      'IRB_CPIO_FIELD_INVALID',
      `type of ${describePath(entry.path)} is ${JSON.stringify(entry.type)}; use one of ${Object.keys(TYPE_BITS).join(', ')}`,
    );
  }
}
