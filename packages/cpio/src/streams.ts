import { CpioError } from './errors.ts';

/**
 * A web `ReadableStream` over a byte stream such as {@link packCpio}'s output. It pulls
 * only when its reader asks (high-water mark 0), and cancelling it closes the source.
 */
export function toReadableStream(source: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  let it: AsyncIterator<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        it ??= source[Symbol.asyncIterator]();
        const r = await it.next();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
      async cancel(reason) {
        await it?.return?.(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * An `AsyncIterable<Uint8Array>` over a web `ReadableStream` of bytes, for {@link readCpio}
 * or as a file body. Stopping early cancels the stream.
 */
export async function* fromReadableStream(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<Uint8Array, void> {
  const reader = stream.getReader();
  let done = false;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) {
        done = true;
        return;
      }
      if (!(r.value instanceof Uint8Array)) {
        throw new CpioError(
          'IRB_CPIO_INPUT_INVALID',
          `stream yielded a ${typeof r.value}; it must yield Uint8Array chunks (pipe text through a TextEncoderStream)`,
        );
      }
      yield r.value;
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
