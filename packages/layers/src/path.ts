import type { CpioPath } from '@irb/cpio';
import { binaryToBytes, bytesToBinary, utf8OrUndefined } from '@irb/tar';

/*
 * Paths inside the rootfs model are "keys": the exact name bytes as a binary string (one UTF-16
 * code unit per byte, U+0000–U+00FF; see @irb/tar's bytesToBinary). Keys compare in byte order
 * with plain `<`, names that are not UTF-8 survive untouched, and a key converts back to its
 * bytes losslessly. Not `new TextDecoder('latin1')`: that is windows-1252 and rewrites 0x80–0x9F.
 */

const utf8 = new TextEncoder();
const ASCII = /^[\x00-\x7f]*$/;
const display = new TextDecoder('utf-8');

/** Bytes → key. */
export function keyOf(bytes: Uint8Array): string {
  return bytesToBinary(bytes);
}

/** Key → bytes. */
export function bytesOfKey(key: string): Uint8Array {
  return binaryToBytes(key);
}

/** A user-supplied path (UTF-8 text, or exact bytes) → key. */
export function keyOfInput(path: string | Uint8Array): string {
  return keyOf(typeof path === 'string' ? utf8.encode(path) : path);
}

/** Key → the path type @irb/cpio takes: text when the bytes are UTF-8, else the bytes. */
export function cpioPathOfKey(key: string): CpioPath {
  if (ASCII.test(key)) return key;
  const bytes = binaryToBytes(key);
  return utf8OrUndefined(bytes) ?? bytes;
}

/** Key → absolute path text for reports and messages (invalid UTF-8 shown as U+FFFD; not a key). */
export function absoluteText(key: string): string {
  return `/${ASCII.test(key) ? key : display.decode(binaryToBytes(key))}`;
}

const CONTROL_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Key → text for messages: absolute, control characters (C0, DEL, C1) escaped as `\n` or
 * `\xNN` as `ls -b` shows them, so a name can neither break the message's one line nor send
 * escape sequences to a terminal; cut after 300 characters.
 */
export function displayKey(key: string): string {
  const text = absoluteText(key).replace(
    /[\x00-\x1f\x7f-\x9f]/g,
    (c) => CONTROL_ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** Result of {@link splitKey}. */
export interface NormalizedPath {
  /** Components, each non-empty, never `.` or `..`. */
  components: string[];
  /** True when a `..` tried to climb above the root and was dropped. */
  clamped: boolean;
}

/**
 * Normalizes a tar name (as a key) inside the root: `./`, empty components and a leading `/`
 * vanish, `..` removes the previous component and stops at the root (`../x` → `x`), the way
 * containerd and umoci clean names. Nothing can name a place outside the root.
 */
export function splitKey(key: string): NormalizedPath {
  const components: string[] = [];
  let clamped = false;
  for (const part of key.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (components.length === 0) clamped = true;
      else components.pop();
      continue;
    }
    components.push(part);
  }
  return { components, clamped };
}

/** A compiled exclude glob. */
export interface Glob {
  /** True when the key (no leading `/`) matches. */
  test(key: string): boolean;
}

/** One path component of a glob: `*` any run of bytes, `?` one byte, the rest literal. */
function componentPattern(segment: string): RegExp {
  let source = '';
  for (const c of segment) {
    if (c === '*') source += source.endsWith('.*') ? '' : '.*';
    else if (c === '?') source += '.';
    else source += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 's');
}

/**
 * Compiles an exclude glob anchored at the root (leading `/` optional): `*` matches within one
 * component, `**` any number of components (also none), `?` one byte other than `/`. A trailing
 * `/` is ignored. Everything else is literal. Matching works component by component with a
 * table (no regex backtracking across components), so no pattern can stall on deep paths.
 */
export function compileGlob(pattern: string): Glob {
  const text = keyOfInput(pattern).replace(/^(\.\/|\/)+/, '');
  const parts: Array<RegExp | '**'> = [];
  for (const segment of text.split('/')) {
    if (segment === '') continue;
    if (segment === '**') {
      if (parts[parts.length - 1] !== '**') parts.push('**');
    } else parts.push(componentPattern(segment));
  }
  return {
    test(key: string): boolean {
      const components = key === '' ? [] : key.split('/');
      const width = components.length + 1;
      // matches[i * width + j]: parts from i on match components from j on.
      const matches = new Uint8Array((parts.length + 1) * width);
      matches[parts.length * width + components.length] = 1;
      for (let i = parts.length - 1; i >= 0; i--) {
        const part = parts[i] as RegExp | '**';
        for (let j = components.length; j >= 0; j--) {
          const here = i * width + j;
          if (part === '**') {
            matches[here] = matches[here + width] || (j < components.length ? matches[here + 1] : 0) ? 1 : 0;
          } else {
            matches[here] =
              j < components.length && matches[here + width + 1] && part.test(components[j] as string)
                ? 1
                : 0;
          }
        }
      }
      return matches[0] === 1;
    },
  };
}
