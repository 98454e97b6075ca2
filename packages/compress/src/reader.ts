/**
 * A pull reader over an `AsyncIterable<Uint8Array>` that can look ahead and give bytes
 * back, so decoders can stop exactly at a member boundary and hand the rest on.
 */
export class ByteReader {
  readonly #iterator: AsyncIterator<Uint8Array>;
  readonly #pending: Uint8Array[] = [];
  #done = false;
  /** Bytes handed out by `next`/`read` minus bytes given back: the offset of the next byte. */
  position = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#iterator = source[Symbol.asyncIterator]();
  }

  /** The next chunk (any size > 0), or `undefined` at the end. */
  async next(): Promise<Uint8Array | undefined> {
    let chunk = this.#pending.pop();
    while (chunk === undefined && !this.#done) {
      const r = await this.#iterator.next();
      if (r.done) this.#done = true;
      else if (r.value.length > 0) chunk = r.value;
    }
    if (chunk !== undefined) this.position += chunk.length;
    return chunk;
  }

  /** Gives bytes back; the next `next` returns them first. */
  unshift(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#pending.push(bytes);
    this.position -= bytes.length;
  }

  /** Up to `n` bytes without consuming them (fewer only at the end). */
  async peek(n: number): Promise<Uint8Array> {
    const head = await this.read(n);
    this.unshift(head);
    return head;
  }

  /** Exactly `n` bytes, or fewer only at the end of the input. */
  async read(n: number): Promise<Uint8Array> {
    const first = await this.next();
    if (first === undefined) return new Uint8Array(0);
    if (first.length >= n) {
      this.unshift(first.subarray(n));
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    out.set(first);
    let filled = first.length;
    while (filled < n) {
      const chunk = await this.next();
      if (chunk === undefined) return out.subarray(0, filled);
      const take = Math.min(n - filled, chunk.length);
      out.set(chunk.subarray(0, take), filled);
      this.unshift(chunk.subarray(take));
      filled += take;
    }
    return out;
  }

  /** Ends the underlying iterator early (lets its producer clean up). */
  async close(): Promise<void> {
    this.#pending.length = 0;
    if (!this.#done) {
      this.#done = true;
      await this.#iterator.return?.();
    }
  }
}

/** Yields the reader's remaining chunks. */
export async function* drain(reader: ByteReader): AsyncGenerator<Uint8Array> {
  for (let chunk = await reader.next(); chunk !== undefined; chunk = await reader.next()) yield chunk;
}
