import { type FileHandle, open, statfs, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { IrbError } from '@irb/errors';
import { makeDirectory } from '@irb/store';

/*
 * The body spool: while the index pass decompresses a layer it must read every byte of the tar
 * anyway, so it keeps the file bodies in a temporary file; the emit pass then reads them back by
 * offset (from the page cache, most of the time) instead of verifying and decompressing the
 * layer blob a second time. A cold build decompresses each layer once.
 *
 * The file is unlinked as soon as it is open: it has no name while it is used, so neither an
 * error, an abort nor a killed process can leave it behind (the kernel frees it with the last
 * descriptor). Only a kill in the instant between open and unlink leaves a file, under the name
 * the caller chose — which is why the builder names it as a temp file of this process in the
 * cache's spool area (@irb/store's `tempPath`), swept by the next run.
 */

/** Bytes gathered before one write, and read at once when bodies are read back. */
const SPOOL_BLOCK = 1024 * 1024;
/** Blocks being written at once. */
const WRITES_IN_FLIGHT = 4;
/**
 * Free space a spool never takes its file system below: the blob downloads and the output
 * share it, and must not fail for a shortcut. Checked at creation and every {@link SPACE_CHECK}.
 */
const MIN_FREE = 1024 * 1024 * 1024;
const SPACE_CHECK = 64 * 1024 * 1024;

/** The spooled bodies of one layer: a nameless temp file and where each member's body starts. */
export class LayerSpool {
  readonly #handle: FileHandle;
  readonly #label: string;
  /** Where the file is, for the free-space checks. */
  readonly #dir: string;
  /** Tar ordinal → offset of its body in the file (bodies are written back to back, in tar order). */
  readonly #offsets = new Map<number, number>();
  /** The block being filled, and how much of it is. */
  #block: Buffer | undefined;
  #filled = 0;
  /** Blocks whose write completed, to fill again (reused pages cost less than new ones). */
  readonly #free: Buffer[] = [];
  /** Writes in flight: the reader goes on decompressing while they land. */
  readonly #writes = new Set<Promise<void>>();
  /** Bytes handed to writes so far: where the next block goes. */
  #written = 0;
  #failed = false;
  #closed = false;

  private constructor(handle: FileHandle, label: string, dir: string) {
    this.#handle = handle;
    this.#label = label;
    this.#dir = dir;
  }

  /**
   * Creates the spool file at `path` and unlinks it at once; `undefined` when it cannot be
   * created or its file system has less than 1 GiB free (the caller then goes on without one).
   */
  static async create(path: string, label: string): Promise<LayerSpool | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'wx+', 0o600).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
        await makeDirectory(dirname(path));
        return open(path, 'wx+', 0o600);
      });
    } catch {
      return undefined;
    }
    try {
      await unlink(path);
    } catch {
      // A file system that cannot unlink an open file: do without a spool rather than leave one.
      await handle.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      return undefined;
    }
    const spool = new LayerSpool(handle, label, dirname(path));
    if (!(await spool.#roomy())) {
      await spool.close();
      return undefined;
    }
    return spool;
  }

  /** True once closed (by {@link close} or a failed write): bodies must come from the blob. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Copies the body of member `ordinal` into the spool. Errors of `body` (the layer stream) are
   * thrown; a failed write (disk full) closes the spool and returns `false`, leaving the rest of
   * the body unread for the tar reader to skip.
   */
  async append(ordinal: number, body: AsyncIterable<Uint8Array>): Promise<boolean> {
    if (this.#closed || this.#failed) return false;
    this.#offsets.set(ordinal, this.#written + this.#filled);
    for await (const chunk of body) {
      let at = 0;
      while (at < chunk.byteLength) {
        const block = this.#block ?? (await this.#nextBlock());
        if (!block) return false;
        const take = Math.min(chunk.byteLength - at, SPOOL_BLOCK - this.#filled);
        block.set(chunk.subarray(at, at + take), this.#filled);
        this.#filled += take;
        at += take;
        if (this.#filled === SPOOL_BLOCK) this.#dispatch();
      }
    }
    return !this.#failed;
  }

  /** Writes out what is gathered and waits for every write; `false` (spool closed) on failure. */
  async finish(): Promise<boolean> {
    if (this.#closed) return false;
    this.#dispatch();
    await Promise.all(this.#writes);
    // The blocks are not needed any more: reading allocates its own.
    this.#free.length = 0;
    if (this.#failed) await this.close();
    return !this.#failed;
  }

  /** A block to fill: a free one, a new one while few writes are in flight, else the next freed. */
  async #nextBlock(): Promise<Buffer | undefined> {
    while (this.#free.length === 0 && this.#writes.size >= WRITES_IN_FLIGHT && !this.#failed) {
      await Promise.race(this.#writes);
    }
    if (this.#failed) return undefined;
    this.#block = this.#free.pop() ?? Buffer.allocUnsafe(SPOOL_BLOCK);
    this.#filled = 0;
    return this.#block;
  }

  /** Starts writing the current block at the end of the file. */
  #dispatch(): void {
    const block = this.#block;
    const length = this.#filled;
    if (!block || length === 0) return;
    this.#block = undefined;
    this.#filled = 0;
    const position = this.#written;
    this.#written += length;
    if (Math.floor(position / SPACE_CHECK) !== Math.floor(this.#written / SPACE_CHECK)) {
      // A disk filling up stops the spool (the layer is then read again), not the build.
      void this.#roomy().then((roomy) => {
        if (!roomy) this.#failed = true;
      });
    }
    const write = (async () => {
      let at = 0;
      try {
        while (at < length) {
          const { bytesWritten } = await this.#handle.write(block, at, length - at, position + at);
          at += bytesWritten;
        }
        this.#free.push(block);
      } catch {
        this.#failed = true;
      }
    })();
    this.#writes.add(write);
    void write.finally(() => this.#writes.delete(write));
  }

  /** Whether the file system keeps more than {@link MIN_FREE} free; `true` when it cannot tell. */
  async #roomy(): Promise<boolean> {
    try {
      const fs = await statfs(this.#dir);
      return fs.bavail * fs.bsize >= MIN_FREE;
    } catch {
      return true;
    }
  }

  /** Whether the body of member `ordinal` is in the spool. */
  has(ordinal: number): boolean {
    return !this.#closed && this.#offsets.has(ordinal);
  }

  /**
   * A reader of bodies in increasing offset order: it reads the file a block at a time, so many
   * small bodies cost one read. By default every block is a new buffer, so a chunk stays valid
   * after the next one is read. With `transient`, the reader reads into the same two blocks
   * over and over: a chunk is valid only until the chunk after it was pulled, and a consumer
   * copies what it keeps longer. A build's packing reads every body once, ~1 MiB blocks by the
   * hundred: as new buffers they were garbage faster than V8 collects it (about 100 MiB waiting
   * at the peak of a cold build of an 830 MB image).
   */
  reader(options: { transient?: boolean } = {}): SpoolReader {
    let block = new Uint8Array(0);
    let blockStart = 0;
    const blocks: Buffer<ArrayBuffer>[] = [];
    let turn = 0;
    const bufferFor = (length: number): Buffer<ArrayBuffer> => {
      if (!options.transient) return Buffer.allocUnsafe(length);
      const slot = turn++ & 1;
      blocks[slot] ??= Buffer.allocUnsafe(SPOOL_BLOCK);
      return blocks[slot];
    };
    const handle = this.#handle;
    const end = () => this.#written;
    const label = this.#label;
    const offsets = this.#offsets;
    return {
      body: async function* (ordinal: number, size: number): AsyncGenerator<Uint8Array> {
        const offset = offsets.get(ordinal);
        if (offset === undefined || offset + size > end()) throw spoolChanged(label, ordinal);
        let position = offset;
        const stop = offset + size;
        while (position < stop) {
          if (position < blockStart || position >= blockStart + block.byteLength) {
            const length = Math.min(SPOOL_BLOCK, end() - position);
            const buffer = bufferFor(length);
            const { bytesRead } = await handle.read(buffer, 0, length, position);
            if (bytesRead === 0) throw spoolChanged(label, ordinal);
            block = new Uint8Array(buffer.buffer, buffer.byteOffset, bytesRead);
            blockStart = position;
          }
          const from = position - blockStart;
          const take = Math.min(stop - position, block.byteLength - from);
          yield block.subarray(from, from + take);
          position += take;
        }
      },
    };
  }

  /** Releases the file (its space is freed: it has no name). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#block = undefined;
    this.#free.length = 0;
    // A write still in flight would fail on a closed descriptor (or worse, a reused one).
    await Promise.all(this.#writes);
    await this.#handle.close().catch(() => undefined);
  }
}

/** Reads bodies back out of a {@link LayerSpool}. */
export interface SpoolReader {
  /** The `size` bytes of member `ordinal`'s body. */
  body(ordinal: number, size: number): AsyncGenerator<Uint8Array>;
}

function spoolChanged(label: string, ordinal: number): IrbError {
  return new IrbError(
    'IRB_LAYER_CHANGED',
    `${label}: the body of member ${ordinal} is missing from the build's temporary spool file; run the build again`,
  );
}
