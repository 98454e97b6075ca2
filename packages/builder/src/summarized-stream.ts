import { IrbError } from '@irb/errors';

/**
 * A byte stream with a `summary` promise: `produce` yields the bytes and calls `finish` with the
 * summary once the last byte is out. `summary` rejects with the error the stream failed with, or
 * with `IRB_STREAM_ABANDONED` (`abandoned` as its message) when the reader stopped before the end.
 * A caller who only reads the bytes never gets an unhandled rejection from `summary`.
 */
export function summarizedStream<S>(
  produce: (finish: (summary: S) => void) => AsyncGenerator<Uint8Array>,
  abandoned: string,
): AsyncGenerator<Uint8Array> & { readonly summary: Promise<S> } {
  let settle: { resolve: (s: S) => void; reject: (e: unknown) => void } | undefined;
  const summary = new Promise<S>((resolve, reject) => {
    settle = { resolve, reject };
  });
  summary.catch(() => {});
  async function* generate(): AsyncGenerator<Uint8Array> {
    let done = false;
    try {
      yield* produce((s) => {
        done = true;
        settle?.resolve(s);
      });
    } catch (error) {
      settle?.reject(error);
      throw error;
    } finally {
      if (!done) settle?.reject(new IrbError('IRB_STREAM_ABANDONED', abandoned));
    }
  }
  return Object.assign(generate(), { summary });
}
