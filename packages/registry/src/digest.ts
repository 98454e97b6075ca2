import { createHash, type Hash } from 'node:crypto';
import { IrbError } from '@irb/errors';

/** A parsed content digest. */
export interface ParsedDigest {
  algorithm: 'sha256' | 'sha512';
  /** Lowercase hex. */
  hex: string;
}

const HEX_LENGTH = { sha256: 64, sha512: 128 } as const;

/**
 * Parses and validates `algorithm:hex`. Only sha256 and sha512 are accepted (the ones
 * the OCI spec registers); the hex part must be lowercase and of the right length.
 */
export function parseDigest(digest: string): ParsedDigest {
  const colon = digest.indexOf(':');
  if (colon <= 0) {
    throw new IrbError(
      'IRB_DIGEST_INVALID',
      `invalid digest "${clip(digest)}": expected "sha256:<64 hex digits>"`,
    );
  }
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new IrbError(
      'IRB_DIGEST_INVALID',
      `unsupported digest algorithm "${clip(algorithm)}" in "${clip(digest)}": irb verifies sha256 and sha512 only`,
    );
  }
  const want = HEX_LENGTH[algorithm];
  if (hex.length !== want || !/^[0-9a-f]+$/.test(hex)) {
    throw new IrbError(
      'IRB_DIGEST_INVALID',
      `invalid digest "${clip(digest)}": ${algorithm} needs exactly ${want} lowercase hex digits`,
    );
  }
  return { algorithm, hex };
}

/** True when `digest` is a valid sha256/sha512 digest. */
export function isDigest(digest: string): boolean {
  try {
    parseDigest(digest);
    return true;
  } catch {
    return false;
  }
}

/** A hash object for the algorithm of `digest` (validated). */
export function createDigestHasher(digest: string): Hash {
  return createHash(parseDigest(digest).algorithm);
}

/** The digest of some bytes (`sha256` unless told otherwise). */
export function digestOf(bytes: Uint8Array, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/** What a blob must be. `size` may be omitted when unknown (then only the digest is checked). */
export interface ExpectedContent {
  digest: string;
  size?: number;
}

/** Options of {@link verifyStream}. */
export interface VerifyStreamOptions extends ExpectedContent {
  /** Bytes already verified-by-hashing before this stream (resumed downloads): fed through `hasher`. */
  hasher?: Hash;
  /** How many bytes `hasher` has already seen; counts towards `size`. Default 0. */
  offset?: number;
  /** Named in error messages (a reference or a path), never a URL with credentials. */
  what?: string;
}

/**
 * Passes `source` through while hashing and counting it; throws `IRB_SIZE_MISMATCH` as soon
 * as more than `size` bytes arrive (before yielding the extra chunk), and `IRB_SIZE_MISMATCH` /
 * `IRB_DIGEST_MISMATCH` after the last chunk if the total or the digest is wrong.
 *
 * The chunks it yields are NOT yet trustworthy: only normal completion of the iteration
 * proves them. Callers therefore stage them: write them to a temporary file and rename it
 * into place (or hand them on) only after the loop ends without throwing — which is what
 * the blob cache does, so consumers of `Layer.open()` only ever read verified bytes. To get
 * small documents (manifests, configs) use {@link readVerified}, which returns nothing
 * until the bytes are proven.
 */
export async function* verifyStream(
  source: AsyncIterable<Uint8Array>,
  options: VerifyStreamOptions,
): AsyncGenerator<Uint8Array, void, undefined> {
  const hasher = options.hasher ?? createDigestHasher(options.digest);
  parseDigest(options.digest);
  const what = options.what ?? options.digest;
  let total = options.offset ?? 0;
  for await (const chunk of source) {
    total += chunk.byteLength;
    if (options.size !== undefined && total > options.size) {
      throw new IrbError(
        'IRB_SIZE_MISMATCH',
        `${what}: received more than the expected ${options.size} bytes; the content does not match its descriptor (corrupt or tampered source)`,
      );
    }
    hasher.update(chunk);
    yield chunk;
  }
  if (options.size !== undefined && total !== options.size) {
    throw new IrbError(
      'IRB_SIZE_MISMATCH',
      `${what}: received ${total} bytes, expected ${options.size}; the transfer was cut short or the content is corrupt`,
    );
  }
  const actual = `${parseDigest(options.digest).algorithm}:${hasher.digest('hex')}`;
  if (actual !== options.digest) {
    throw new IrbError(
      'IRB_DIGEST_MISMATCH',
      `${what}: content digest is ${actual}, expected ${options.digest}; the bytes are corrupt or were tampered with and were not used`,
    );
  }
}

/** Reads a whole stream into memory and returns it only once size and digest are verified. */
export async function readVerified(
  source: AsyncIterable<Uint8Array>,
  options: VerifyStreamOptions,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of verifyStream(source, options)) {
    chunks.push(chunk);
    length += chunk.byteLength;
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/** Checks bytes already in memory against a digest (and size). */
export function verifyBytes(bytes: Uint8Array, expected: ExpectedContent & { what?: string }): void {
  const what = expected.what ?? expected.digest;
  if (expected.size !== undefined && bytes.byteLength !== expected.size) {
    throw new IrbError(
      'IRB_SIZE_MISMATCH',
      `${what}: got ${bytes.byteLength} bytes, expected ${expected.size}; the content is corrupt or was tampered with`,
    );
  }
  const { algorithm } = parseDigest(expected.digest);
  const actual = digestOf(bytes, algorithm);
  if (actual !== expected.digest) {
    throw new IrbError(
      'IRB_DIGEST_MISMATCH',
      `${what}: content digest is ${actual}, expected ${expected.digest}; the bytes are corrupt or were tampered with and were not used`,
    );
  }
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
