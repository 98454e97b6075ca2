/**
 * Runs `start` on items as they come, up to `window` at once, and yields the results in the
 * items' order: the shape of every block compressor here (gzip's deflate blocks, lz4's 8 MiB
 * blocks), where workers finish out of order but the output must not.
 *
 * `start` is called in order, so it may keep state that depends on the previous items (gzip's
 * running CRC and dictionary). It returns `done: true` with the last item it wants; nothing is
 * read from `items` after that. A rejected result surfaces when it reaches the head of the queue;
 * the others are awaited there too, never left unobserved. `items` is closed at the end, also on
 * an error or an abort.
 */
export async function* inOrder<T, R>(
  items: AsyncIterator<T>,
  window: number,
  start: (item: T) => { result: Promise<R>; done?: boolean } | undefined,
  signal?: AbortSignal,
): AsyncGenerator<R> {
  const queue: Promise<R>[] = [];
  try {
    let more = true;
    while (more || queue.length > 0) {
      while (more && queue.length < window) {
        const next = await items.next();
        signal?.throwIfAborted();
        if (next.done) {
          more = false;
          break;
        }
        const started = start(next.value);
        if (started?.done) more = false;
        if (!started) break;
        // Rejections are observed when the result reaches the head of the queue.
        started.result.catch(() => {});
        queue.push(started.result);
      }
      const head = queue.shift();
      if (head === undefined) break;
      const out = await head;
      signal?.throwIfAborted();
      yield out;
    }
  } finally {
    await items.return?.(undefined);
  }
}
