import { IrbError } from '@irb/errors';

/** The files of irb's init are at most this large (it reads each into a fixed buffer). */
export const FIELDS_MAX_BYTES = 1 << 20;

const encoder = new TextEncoder();

/**
 * A file of NUL-terminated fields: `magic`, then each field as its tag byte and value bytes.
 * @throws IrbError `IRB_OPTION_INVALID` when it is larger than {@link FIELDS_MAX_BYTES}.
 */
export function joinFields(
  what: string,
  magic: string,
  fields: ReadonlyArray<readonly [string, Uint8Array]>,
): Uint8Array {
  const parts = [
    encoder.encode(magic),
    ...fields.map(([tag, value]) => {
      const out = new Uint8Array(value.length + 1);
      out[0] = tag.charCodeAt(0);
      out.set(value, 1);
      return out;
    }),
  ];
  const size = parts.reduce((n, f) => n + f.length + 1, 0);
  if (size > FIELDS_MAX_BYTES) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `${what} would be ${size} bytes, more than the init reads (${FIELDS_MAX_BYTES}); shorten argv or env`,
    );
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const f of parts) {
    out.set(f, at);
    at += f.length + 1; // the NUL terminator is already 0
  }
  return out;
}

/**
 * The fields after `magic` as `[tag, value]`, with the init's own checks.
 * @throws the error `bad(why)` makes when the bytes are not such a file.
 */
export function splitFields(
  bytes: Uint8Array,
  magic: string,
  bad: (why: string) => Error,
): Array<[string, Uint8Array]> {
  if (bytes.length === 0) throw bad('is empty');
  if (bytes.length > FIELDS_MAX_BYTES) throw bad('is larger than 1 MiB');
  if (bytes[bytes.length - 1] !== 0) throw bad('is truncated (no NUL after its last field)');
  const fields: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0) {
      fields.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  if (new TextDecoder().decode(fields[0]) !== magic) throw bad(`does not start with ${magic}`);
  return fields.slice(1).map((f) => [String.fromCharCode(f[0] ?? 0), f.subarray(1).slice()]);
}
