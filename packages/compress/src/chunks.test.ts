import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { createGunzip, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { chunksOf } from './chunks.ts';

describe('chunksOf', () => {
  it('hands out the pushed buffers themselves, never joined, in order', async () => {
    const pushed = Array.from({ length: 64 }, (_, i) => Buffer.alloc(1000 + i, i));
    const stream = new PassThrough();
    // Everything is buffered before the first read: a Readable's own iterator would join it.
    for (const chunk of pushed) stream.write(chunk);
    stream.end();
    const got: Uint8Array[] = [];
    for await (const chunk of chunksOf(stream)) got.push(chunk);
    expect(got.map((c) => c.byteLength)).toEqual(pushed.map((c) => c.byteLength));
    got.forEach((chunk, i) => {
      expect(chunk.buffer).toBe(pushed[i]?.buffer);
      expect(Buffer.from(chunk).equals(pushed[i] as Buffer)).toBe(true);
    });
  });

  it('a decompressor that outruns its reader: the same bytes, in its own chunks', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const gunzip = createGunzip({ chunkSize: 64 * 1024 });
    Readable.from([gzipSync(data)]).pipe(gunzip);
    const sizes: number[] = [];
    const parts: Uint8Array[] = [];
    for await (const chunk of chunksOf(gunzip)) {
      sizes.push(chunk.byteLength);
      parts.push(chunk);
      // A slow reader: chunks pile up in the stream meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * 1024);
  });

  it('pauses the stream while chunks wait (backpressure reaches the producer)', async () => {
    let produced = 0;
    const stream = new Readable({
      highWaterMark: 1,
      read() {
        produced++;
        this.push(produced > 1000 ? null : Buffer.alloc(16));
      },
    });
    const iterator = chunksOf(stream)[Symbol.asyncIterator]();
    await iterator.next();
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Not the whole stream: a few chunks ahead of the reader at most.
    expect(produced).toBeLessThan(20);
    await iterator.return?.(undefined);
    expect(stream.destroyed).toBe(true);
  });

  it('a reader that stops while an error is on its way does not leave it unheard', async () => {
    const stream = new PassThrough();
    stream.write(Buffer.from('first'));
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.prependListener('uncaughtException', onUncaught);
    try {
      for await (const _ of chunksOf(stream)) {
        // destroy(error) emits the error a tick later; the loop ends before that.
        stream.destroy(new Error('late'));
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
  });

  it('throws the stream error after the chunks before it', async () => {
    const stream = new PassThrough();
    stream.write(Buffer.from('first'));
    const got: string[] = [];
    const reading = (async () => {
      for await (const chunk of chunksOf(stream)) {
        got.push(Buffer.from(chunk).toString());
        stream.destroy(new Error('broken'));
      }
    })();
    await expect(reading).rejects.toThrow('broken');
    expect(got).toEqual(['first']);
  });

  it('a stream destroyed without an error does not end normally', async () => {
    const stream = new PassThrough();
    stream.write(Buffer.from('x'));
    setTimeout(() => stream.destroy(), 5);
    await expect(
      (async () => {
        for await (const _ of chunksOf(stream)) {
          // reads 'x', then waits until the stream is destroyed
        }
      })(),
    ).rejects.toThrow('closed before its end');
  });
});
