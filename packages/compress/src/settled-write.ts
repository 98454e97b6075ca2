import type { Writable } from 'node:stream';

/**
 * Writes `chunk` to a Node stream and settles once the stream took it: the write's callback, or
 * the stream's `error` or `close`. node:zlib never calls the callback of the write it was
 * processing when it fails (it destroys itself instead), so awaiting the callback alone would
 * leave the caller waiting on a promise nothing settles — and a process whose only work is that
 * promise exits 0 with no output.
 */
export function settledWrite(stream: Writable, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onClose = (): void => {
      cleanup();
      reject(stream.errored ?? new Error('the stream closed before it took the write'));
    };
    stream.on('error', onError);
    stream.on('close', onClose);
    stream.write(chunk, (error) => {
      cleanup();
      if (error) reject(error);
      else resolve();
    });
  });
}
