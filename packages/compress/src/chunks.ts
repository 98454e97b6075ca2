import type { Readable } from 'node:stream';

/** Chunks read ahead before the stream is paused: enough to keep a decompressor busy. */
const READ_AHEAD = 4;

/**
 * The chunks of a Node stream one by one, as the stream pushed them. A Readable's own async
 * iterator reads everything buffered at once, so whenever two or more chunks wait it copies them
 * into a new buffer (`Buffer.concat`): for a decompressor that outruns its reader that was a
 * third of the bytes copied once more, and as many allocations. This hands out the pushed
 * buffers themselves and pauses the stream while a few wait, so backpressure still reaches the
 * producer. Errors are thrown where the stream failed; ending early destroys the stream.
 */
export async function* chunksOf(stream: Readable): AsyncGenerator<Uint8Array> {
  const queue: Uint8Array[] = [];
  let ended = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (chunk: Buffer) => {
    queue.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    if (queue.length >= READ_AHEAD) stream.pause();
    notify();
  };
  const onEnd = () => {
    ended = true;
    notify();
  };
  const onError = (error: unknown) => {
    failure ??= { error };
    notify();
  };
  // A stream destroyed without an error (aborted elsewhere) closes without `end`.
  const onClose = () => {
    if (!ended) failure ??= { error: stream.errored ?? new Error('the stream closed before its end') };
    notify();
  };
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('error', onError);
  stream.on('close', onClose);
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk) {
        if (queue.length < READ_AHEAD && stream.isPaused()) stream.resume();
        yield chunk;
        continue;
      }
      if (failure) throw failure.error;
      if (ended) return;
      if (stream.isPaused()) stream.resume();
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.off('error', onError);
    stream.off('close', onClose);
    // An error may still be on its way (destroy(error) emits it a tick later) when the reader
    // stops: nobody is left to hear it, and an 'error' without a listener ends the process.
    stream.on('error', ignore);
    if (!ended) stream.destroy();
  }
}

function ignore(): void {}
