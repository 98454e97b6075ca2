import { createHash, type Hash } from 'node:crypto';
import { IrbError } from '@irb/errors';
import type { LayerSource } from './types.ts';

/** `sha256:<64 hex>` or `sha512:<128 hex>`: the digests OCI registers, and the ones a diff_id can be checked with. */
const DIGEST = /^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;

/**
 * Checks a layer's uncompressed tar against its diff_id (the config's `rootfs.diff_ids`) while
 * the index pass reads it: the bytes are hashed as they pass, so the check costs no read of its
 * own. The blob's digest proves the compressed bytes are the ones published; the diff_id proves
 * they decompress to the tar the image's config names (a blob swapped for another layer of the
 * same registry, or a decompressor that differs, is caught here).
 */
export class DiffIdCheck {
  readonly #expected: string;
  readonly #label: string;
  readonly #hash: Hash;
  #ended = false;

  private constructor(expected: string, label: string) {
    this.#expected = expected;
    this.#label = label;
    this.#hash = createHash(expected.slice(0, expected.indexOf(':')));
  }

  /** The check of `layer`'s diff_id, or `undefined` when the layer has none. */
  static of(layer: LayerSource, label: string): DiffIdCheck | undefined {
    const { diffId } = layer;
    if (diffId === undefined || diffId === '') return undefined;
    if (!DIGEST.test(diffId)) {
      throw new IrbError(
        'IRB_LAYER_DIFF_ID_MISMATCH',
        `${label}: its diff_id "${diffId.slice(0, 80)}" is not a sha256 or sha512 digest, so the layer cannot be checked; the image config is malformed`,
      );
    }
    return new DiffIdCheck(diffId, label);
  }

  /** `tar` passed through unchanged, hashed on the way. */
  async *hashing(tar: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of tar) {
      this.#hash.update(chunk);
      yield chunk;
    }
    this.#ended = true;
  }

  /** After the tar was read to its end: throws `IRB_LAYER_DIFF_ID_MISMATCH` naming both digests. */
  verify(): void {
    if (!this.#ended) throw new Error('DiffIdCheck.verify() before the layer tar was read to its end');
    const algorithm = this.#expected.slice(0, this.#expected.indexOf(':'));
    const actual = `${algorithm}:${this.#hash.digest('hex')}`;
    if (actual === this.#expected) return;
    throw new IrbError(
      'IRB_LAYER_DIFF_ID_MISMATCH',
      `${this.#label}: the uncompressed layer is ${actual}, but the image config's diff_id is ${this.#expected}; the image is corrupt or was tampered with — rebuild or re-push it`,
    );
  }
}
