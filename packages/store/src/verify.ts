import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

/** Bytes read at once while hashing a file: large reads cost fewer system calls. */
const CHUNK = 4 * 1024 * 1024;

/**
 * The `sha256:<hex>` digest of a file's bytes and its size, read from where it is (the page
 * cache, mostly); `undefined` when it cannot be read. What a cache entry's description records
 * when it is stored, and what it is checked against before it is used.
 */
export async function fileDigest(
  path: string,
  signal?: AbortSignal,
): Promise<{ digest: string; size: number } | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path);
  } catch {
    return undefined;
  }
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(CHUNK);
    let size = 0;
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, size);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { digest: `sha256:${hash.digest('hex')}`, size };
  } catch (error) {
    if (signal?.aborted) throw error;
    return undefined;
  } finally {
    await handle.close();
  }
}

/** A running `sha256:<hex>` digest of bytes as they pass (what a cache entry records when stored). */
export function createDigester(): { update(chunk: Uint8Array): void; digest(): string } {
  const hash = createHash('sha256');
  return {
    update: (chunk) => {
      hash.update(chunk);
    },
    digest: () => `sha256:${hash.digest('hex')}`,
  };
}
