/**
 * Node.js helpers of `@irb/cpio` (import from `@irb/cpio/node`): adapters to Node streams and
 * {@link entriesFromDirectory}, which turns a directory on disk into writer entries. Kept apart so the
 * core package stays free of `node:` imports.
 */
import { isUtf8 } from 'node:buffer';
import type { BigIntStats } from 'node:fs';
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { Readable, type ReadableOptions } from 'node:stream';
import { CpioError } from './errors.ts';
import type { CpioEntry, CpioPath } from './types.ts';

export { sourceDateEpoch } from './epoch.ts';

/** A Node `Readable` (byte mode) over a byte stream such as `packCpio`'s output; pipe it to a file or a socket. */
export function toNodeReadable(
  source: AsyncIterable<Uint8Array>,
  options: Pick<ReadableOptions, 'highWaterMark' | 'signal'> = {},
): Readable {
  return Readable.from(source, { objectMode: false, ...options });
}

/**
 * An `AsyncIterable<Uint8Array>` over a Node `Readable` (a file stream, `process.stdin`, a
 * socket). Readables are async iterable already; this checks that chunks are bytes, not text.
 */
export async function* fromNodeReadable(readable: NodeJS.ReadableStream): AsyncGenerator<Uint8Array, void> {
  for await (const chunk of readable) {
    if (!(chunk instanceof Uint8Array)) {
      throw new CpioError(
        'IRB_CPIO_INPUT_INVALID',
        'stream yielded text; do not call setEncoding() on a stream that carries cpio data',
      );
    }
    yield chunk;
  }
}

/** Options of {@link entriesFromDirectory}. */
export interface DirectoryEntriesOptions {
  /**
   * Archive path the directory maps to, e.g. `opt/agent` (no leading `/`). Default: the
   * archive root (`.`). Parents of the prefix are not emitted; add them yourself.
   */
  prefix?: string;
  /** Emit an entry for the directory itself (`.` or the prefix), which sets the mode and owner of that directory. Default `true`. */
  includeRoot?: boolean;
  /** Owner written for every entry instead of the one on disk, e.g. `{ uid: 0, gid: 0 }`. Default: the owners on disk. */
  owner?: { uid: number; gid: number };
  /** Latest mtime written (e.g. `SOURCE_DATE_EPOCH`); later mtimes are clamped to it. Default: no clamp. */
  clampMtime?: number;
  /** Leaves out a path (relative to `dir`, `/`-separated) and, for a directory, all below it, when it returns false. */
  filter?: (relativePath: string, stats: BigIntStats) => boolean;
  /**
   * Use synchronous fs calls for metadata and for files up to 256 KiB. Default `true`: with a
   * warm page cache each call blocks the event loop for microseconds (the generator still
   * yields between entries), and skipping the thread-pool round trips makes large trees 2–4×
   * faster. Set `false` where even that matters; small files are then read ahead in parallel.
   */
  syncIo?: boolean;
  /** Stops the walk. */
  signal?: AbortSignal;
}

interface Found {
  fsPath: Buffer;
  archivePath: CpioPath;
  stats: BigIntStats;
}

const SLASH = Buffer.from('/');

function archivePathOf(bytes: Buffer): CpioPath {
  return isUtf8(bytes) ? bytes.toString('utf8') : new Uint8Array(bytes);
}

/** Major and minor of a Linux dev_t, as glibc's gnu_dev_major/gnu_dev_minor compute them. */
function splitDev(rdev: bigint): { rdevMajor: number; rdevMinor: number } {
  return {
    rdevMajor: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n)),
    rdevMinor: Number((rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n)),
  };
}

function mtimeOf(stats: BigIntStats, clamp: number | undefined): number {
  // newc stores unsigned 32-bit seconds: earlier times become 0, later ones 2^32-1.
  let s = Number(stats.mtimeNs / 1_000_000_000n);
  if (stats.mtimeNs < 0n && stats.mtimeNs % 1_000_000_000n !== 0n) s -= 1;
  if (clamp !== undefined && s > clamp) s = clamp;
  return Math.min(Math.max(s, 0), 0xffff_ffff);
}

const READ_CHUNK = 512 * 1024;
const SMALL_FILE = 256 * 1024;
const PREFETCH_FILES = 32;
const PREFETCH_PARALLEL = 8;

/** A whole small file with blocking calls; reads one byte more than expected so growth shows. */
function readSmallFileSync(fsPath: Buffer, size: number): Uint8Array {
  const fd = openSync(fsPath, 'r');
  try {
    const buf = new Uint8Array(size + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n === buf.length) break;
    }
    return n === buf.length ? buf : buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** A whole small file in one read (asking one byte more than expected shows growth). */
async function readSmallFile(fsPath: Buffer, size: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const c of readFileBody(fsPath, size)) {
    chunks.push(c);
    total += c.length;
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/**
 * Reads a file as a body of the size lstat reported. Each read asks for one byte more than
 * is left, so a file that grew since shows up (and `packCpio` reports the size mismatch)
 * without an extra system call; a small file takes a single read.
 */
async function* readFileBody(fsPath: Buffer, size: number): AsyncGenerator<Uint8Array, void, undefined> {
  const fh = await open(fsPath, 'r');
  try {
    let total = 0;
    for (;;) {
      const want = Math.min(size - total + 1, READ_CHUNK);
      const buf = new Uint8Array(want);
      const { bytesRead } = await fh.read(buf, 0, want, null);
      if (bytesRead === 0) return;
      total += bytesRead;
      yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
      // A short read of a regular file means its end; past the expected size the writer stops us.
      if (bytesRead < want || total > size) return;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Walks `dir` (without following symlinks) and yields writer entries for everything in it,
 * ready for `packCpio`: parents before children, names sorted by their bytes, so the same
 * tree always gives the same archive. Hard links are found by (dev, ino) and yielded as one
 * file entry with `links`, at the place of the last of its names so every parent exists.
 * Names that are not UTF-8 are kept as exact bytes. File bodies are opened one at a time
 * while packing.
 *
 * The whole tree's metadata is collected before the first entry is yielded (hard links
 * need it); file contents are not read until packed.
 */
export async function* entriesFromDirectory(
  dir: string,
  options: DirectoryEntriesOptions = {},
): AsyncGenerator<CpioEntry, void, undefined> {
  const { signal, owner, clampMtime, filter } = options;
  const syncIo = options.syncIo ?? true;
  const prefix = options.prefix ?? '';
  if (prefix.startsWith('/') || prefix.endsWith('/')) {
    throw new CpioError(
      'IRB_OPTION_INVALID',
      `prefix ${JSON.stringify(prefix)} must be a relative path without a leading or trailing "/"`,
    );
  }
  const rootStats = await lstat(dir, { bigint: true }).catch((cause: unknown) => {
    throw new CpioError(
      'IRB_CPIO_DIRECTORY_UNREADABLE',
      `cannot read directory ${JSON.stringify(dir)}; check the path`,
      {
        cause,
      },
    );
  });
  if (!rootStats.isDirectory()) {
    throw new CpioError(
      'IRB_CPIO_DIRECTORY_UNREADABLE',
      `${JSON.stringify(dir)} is not a directory; give a directory to pack`,
    );
  }

  const found: Found[] = [];
  const prefixBytes = Buffer.from(prefix, 'utf8');
  if (options.includeRoot ?? true) {
    found.push({ fsPath: Buffer.from(dir), archivePath: prefix === '' ? '.' : prefix, stats: rootStats });
  }
  // Depth-first with sorted children keeps parents ahead of children and the order stable.
  const walk = async (fsDir: Buffer, rel: Buffer): Promise<void> => {
    signal?.throwIfAborted();
    const names = (
      syncIo ? readdirSync(fsDir, { encoding: 'buffer' }) : await readdir(fsDir, { encoding: 'buffer' })
    ).sort(Buffer.compare);
    const paths = names.map((name) => Buffer.concat([fsDir, SLASH, name]));
    const allStats: BigIntStats[] = [];
    if (syncIo) {
      for (const p of paths) allStats.push(lstatSync(p, { bigint: true }));
    } else {
      // In parallel batches: one at a time, the thread-pool round trips dominate large trees.
      for (let i = 0; i < paths.length; i += 64) {
        allStats.push(...(await Promise.all(paths.slice(i, i + 64).map((p) => lstat(p, { bigint: true })))));
      }
    }
    for (const [i, name] of names.entries()) {
      const fsPath = paths[i]!;
      const stats = allStats[i]!;
      const relPath = rel.length === 0 ? name : Buffer.concat([rel, SLASH, name]);
      if (filter && !filter(relPath.toString('utf8'), stats)) continue;
      const full = prefixBytes.length === 0 ? relPath : Buffer.concat([prefixBytes, SLASH, relPath]);
      found.push({ fsPath, archivePath: archivePathOf(full), stats });
      if (stats.isDirectory()) await walk(fsPath, relPath);
    }
  };
  await walk(Buffer.from(dir), Buffer.alloc(0));

  // Hard links: every name of an inode, in walk order; the group goes where its last name is.
  const groups = new Map<string, Found[]>();
  for (const f of found) {
    if (f.stats.isFile() && f.stats.nlink > 1n) {
      const key = `${f.stats.dev}:${f.stats.ino}`;
      const g = groups.get(key);
      if (g) g.push(f);
      else groups.set(key, [f]);
    }
  }

  // Files whose group sits elsewhere are dropped here, so read-ahead sees the real order.
  const plan = found.filter((f) => {
    if (!f.stats.isFile() || f.stats.nlink < 2n) return true;
    const g = groups.get(`${f.stats.dev}:${f.stats.ino}`)!;
    return g[g.length - 1] === f;
  });

  // Small files are read a few entries ahead, so their open/read/close round trips through
  // the thread pool overlap instead of running one after another. Bounded: at most
  // PREFETCH_FILES files of at most SMALL_FILE bytes are held, PREFETCH_PARALLEL read at once.
  const prefetched = new Map<number, Promise<Uint8Array>>();
  let nextPrefetch = 0;
  let inflight = 0;
  const isSmall = (f: Found) => f.stats.isFile() && f.stats.size > 0n && f.stats.size <= BigInt(SMALL_FILE);
  const prefetch = (from: number) => {
    if (syncIo) return;
    if (nextPrefetch <= from) nextPrefetch = from + 1;
    while (
      nextPrefetch < plan.length &&
      nextPrefetch <= from + PREFETCH_FILES &&
      inflight < PREFETCH_PARALLEL
    ) {
      const f = plan[nextPrefetch]!;
      if (isSmall(f)) {
        inflight++;
        const p = readSmallFile(f.fsPath, Number(f.stats.size));
        // Also marks it handled: an unread prefetch (the consumer stopped) must not crash the process.
        p.then(
          () => inflight--,
          () => inflight--,
        );
        prefetched.set(nextPrefetch, p);
      }
      nextPrefetch++;
    }
  };

  for (const [index, f] of plan.entries()) {
    signal?.throwIfAborted();
    prefetch(index);
    const { stats } = f;
    const base = {
      path: f.archivePath,
      mode: Number(stats.mode & 0o7777n),
      uid: owner ? owner.uid : Number(stats.uid),
      gid: owner ? owner.gid : Number(stats.gid),
      mtime: mtimeOf(stats, clampMtime),
    };
    if (stats.isFile()) {
      let links: CpioPath[] | undefined;
      if (stats.nlink > 1n) {
        const g = groups.get(`${stats.dev}:${stats.ino}`)!;
        if (g.length > 1) {
          base.path = g[0]!.archivePath;
          links = g.slice(1).map((x) => x.archivePath);
        }
      }
      const size = Number(stats.size);
      const { fsPath } = f;
      const early = prefetched.get(index);
      prefetched.delete(index);
      yield {
        type: 'file',
        ...base,
        size,
        ...(links ? { links } : {}),
        body: early
          ? async function* () {
              yield await early;
            }
          : syncIo && size <= SMALL_FILE
            ? async function* () {
                yield readSmallFileSync(fsPath, size);
              }
            : () => readFileBody(fsPath, size),
      };
    } else if (stats.isDirectory()) {
      yield { type: 'directory', ...base };
    } else if (stats.isSymbolicLink()) {
      const target = syncIo
        ? readlinkSync(f.fsPath, { encoding: 'buffer' })
        : await readlink(f.fsPath, { encoding: 'buffer' });
      yield { type: 'symlink', ...base, target: archivePathOf(target) };
    } else if (stats.isCharacterDevice() || stats.isBlockDevice()) {
      yield { type: stats.isCharacterDevice() ? 'char' : 'block', ...base, ...splitDev(stats.rdev) };
    } else if (stats.isFIFO()) {
      yield { type: 'fifo', ...base };
    } else if (stats.isSocket()) {
      yield { type: 'socket', ...base };
    }
  }
}
