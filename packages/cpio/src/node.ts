/**
 * Node.js helpers of `@irb/cpio` (import from `@irb/cpio/node`): adapters to Node streams and
 * {@link entriesFromDirectory}, which turns a directory on disk into writer entries. Kept apart so the
 * core package stays free of `node:` imports.
 */
import { isUtf8 } from 'node:buffer';
import type { BigIntStats } from 'node:fs';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { Readable, type ReadableOptions } from 'node:stream';
import { IrbError } from './errors.ts';
import type { CpioEntry, CpioPath } from './types.ts';

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
      throw new IrbError(
        'IRB_CPIO_INVALID_INPUT',
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
  /** Stops the walk and any open body. */
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
  const prefix = options.prefix ?? '';
  if (prefix.startsWith('/') || prefix.endsWith('/')) {
    throw new IrbError(
      'IRB_CPIO_INVALID_OPTION',
      `prefix ${JSON.stringify(prefix)} must be a relative path without a leading or trailing "/"`,
    );
  }
  const rootStats = await lstat(dir, { bigint: true }).catch((cause: unknown) => {
    throw new IrbError(
      'IRB_CPIO_DIRECTORY_UNREADABLE',
      `cannot read directory ${JSON.stringify(dir)}; check the path`,
      {
        cause,
      },
    );
  });
  if (!rootStats.isDirectory()) {
    throw new IrbError(
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
    const names = (await readdir(fsDir, { encoding: 'buffer' })).sort(Buffer.compare);
    for (const name of names) {
      const fsPath = Buffer.concat([fsDir, SLASH, name]);
      const relPath = rel.length === 0 ? name : Buffer.concat([rel, SLASH, name]);
      const stats = await lstat(fsPath, { bigint: true });
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

  for (const f of found) {
    signal?.throwIfAborted();
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
          if (g[g.length - 1] !== f) continue;
          base.path = g[0]!.archivePath;
          links = g.slice(1).map((x) => x.archivePath);
        }
      }
      const size = Number(stats.size);
      const { fsPath } = f;
      yield {
        type: 'file',
        ...base,
        size,
        ...(links ? { links } : {}),
        body: () => createReadStream(fsPath, { highWaterMark: 256 * 1024, ...(signal ? { signal } : {}) }),
      };
    } else if (stats.isDirectory()) {
      yield { type: 'directory', ...base };
    } else if (stats.isSymbolicLink()) {
      const target = await readlink(f.fsPath, { encoding: 'buffer' });
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
