import { bytesToBinary } from './bytes.ts';
import { TarFormatError } from './errors.ts';

/** One PAX extended-header record. */
export interface PaxRecord {
  /** The keyword. POSIX keywords are UTF-8 text; bytes that are not UTF-8 show as U+FFFD (keys are never written back). */
  key: string;
  /** The value as exact bytes: `path` and `linkpath` may be in any encoding (GNU tar writes raw bytes). */
  value: Uint8Array;
}

const keyDecoder = new TextDecoder('utf-8');

/**
 * Keys whose value is a name: a NUL inside one would be cut by every C reader, so two different
 * names would become one file. Go's archive/tar refuses them (`validPAXRecord`), and so do we.
 */
const NAME_KEYS = new Set(['path', 'linkpath', 'uname', 'gname', 'GNU.sparse.name']);

/**
 * Parses PAX records (`<length> <key>=<value>\n`, the length counting the whole record) from an
 * extended header's data. NUL padding after the last record ends the list. Values stay bytes.
 * Throws {@link TarFormatError} on a record whose length, newline or key is missing or wrong, a
 * key with a NUL byte, or a NUL byte in a name's value (`path`, `linkpath`, `uname`, `gname`,
 * `GNU.sparse.name`).
 */
export function parsePax(data: Uint8Array): PaxRecord[] {
  const records: PaxRecord[] = [];
  let pos = 0;
  while (pos < data.byteLength) {
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    if (space === -1 || space - pos > 10) throw new TarFormatError('malformed PAX record length');
    const digits = bytesToBinary(data.subarray(pos, space));
    const length = /^\d+$/.test(digits) ? Number(digits) : Number.NaN;
    if (!Number.isInteger(length) || length <= space - pos + 1 || pos + length > data.byteLength) {
      throw new TarFormatError('malformed PAX record length');
    }
    const record = data.subarray(space + 1, pos + length);
    if (record[record.byteLength - 1] !== 0x0a) throw new TarFormatError('PAX record without newline');
    const equals = record.indexOf(0x3d);
    if (equals <= 0) throw new TarFormatError('PAX record without key');
    const keyBytes = record.subarray(0, equals);
    if (keyBytes.includes(0)) throw new TarFormatError('PAX record key contains a NUL byte');
    const key = keyDecoder.decode(keyBytes);
    const value = record.subarray(equals + 1, record.byteLength - 1);
    if (NAME_KEYS.has(key) && value.includes(0)) {
      throw new TarFormatError(`PAX ${key} contains a NUL byte, which no name can hold`);
    }
    records.push({ key, value });
    pos += length;
  }
  return records;
}

/**
 * A PAX number (`size`, `uid`, `gid`, `mtime`, sparse offsets): decimal, optionally negative;
 * a fraction (PAX times carry nanoseconds) is dropped. Throws {@link TarFormatError} otherwise.
 */
export function paxInteger(value: Uint8Array, key: string): number {
  const text = bytesToBinary(value);
  const match = /^(-?\d+)(\.\d*)?$/.exec(text);
  const number = match ? Number(match[1]) : Number.NaN;
  if (!Number.isSafeInteger(number)) {
    throw new TarFormatError(`PAX ${key} "${printable(text.slice(0, 40))}" is not a number`);
  }
  return number;
}

/** ASCII text of a value for messages (other bytes as `\xNN`). */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
