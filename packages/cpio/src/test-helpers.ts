import { type CpioReadEntry, type ReadCpioOptions, readCpio } from './reader.ts';

/** Concatenates a byte stream into one array. */
export async function concatStream(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of chunks) {
    parts.push(c);
    n += c.length;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A read entry with its body collected. */
export type ReadBack = Omit<CpioReadEntry, 'body' | 'bytes'> & { data: Uint8Array };

/** Reads every entry of an archive, collecting bodies. */
export async function readBack(
  archive: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options?: ReadCpioOptions,
): Promise<ReadBack[]> {
  const out: ReadBack[] = [];
  for await (const e of readCpio(archive instanceof Uint8Array ? [archive] : archive, options)) {
    const data = await e.bytes();
    const { body: _b, bytes: _y, ...rest } = e;
    out.push({ ...rest, data });
  }
  return out;
}

/** Splits bytes into chunks of the given sizes (cycled), to exercise chunk boundaries. */
export async function* rechunk(data: Uint8Array, sizes: readonly number[]): AsyncGenerator<Uint8Array> {
  let o = 0;
  let i = 0;
  while (o < data.length) {
    const n = Math.max(1, sizes[i++ % sizes.length]!);
    yield data.slice(o, o + n);
    o += n;
  }
}

export { pseudoRandomBytes } from '@irb/test-utils';
