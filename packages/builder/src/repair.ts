import { corruptCacheEntry } from '@irb/store';

/**
 * Runs `attempt`, and once more when it failed because a file of the cache turned out corrupt
 * (a blob or a member that no longer matches the digest recorded when it was stored): the cache
 * removed that file, so the second attempt fetches or builds it afresh instead of failing. The
 * second attempt gets a warning to report, saying which file was replaced.
 */
export async function repairingCache<T>(attempt: (warnings: readonly string[]) => Promise<T>): Promise<T> {
  try {
    return await attempt([]);
  } catch (error) {
    const entry = corruptCacheEntry(error);
    if (entry === undefined) throw error;
    return attempt([
      `the cached ${entry} did not match its digest (disk corruption?); it was removed and fetched or built again`,
    ]);
  }
}

/**
 * `data`, then the outcome of `verify` (started when `data` is first read, so it runs while the
 * bytes are copied): a rejection surfaces as the stream's error after the last byte, which a
 * writer that renames only on success (writeFileAtomic) turns into no output at all.
 */
export async function* verifiedAtEnd(
  data: AsyncIterable<Uint8Array>,
  verify: () => Promise<void>,
): AsyncGenerator<Uint8Array> {
  const checking = verify();
  // Awaited below; never an unhandled rejection while `data` is read.
  checking.catch(() => {});
  yield* data;
  await checking;
}
