import { randomBytes } from 'node:crypto';
import { createReadStream, readFileSync, readlinkSync, rmSync, unlinkSync } from 'node:fs';
import {
  appendFile,
  link,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { IrbError } from '@irb/errors';
import { parseDigest, verifyBytes, verifyStream } from './digest.ts';

/**
 * The default blob cache directory: `IRB_CACHE_DIR`, else `$XDG_CACHE_HOME/irb/blobs`,
 * else `~/.cache/irb/blobs`.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IRB_CACHE_DIR) return env.IRB_CACHE_DIR;
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg?.startsWith('/') ? xdg : join(homedir(), '.cache'), 'irb', 'blobs');
}

/**
 * The layer index cache that goes with a blob cache directory: `<parent>/index` beside a
 * directory named `blobs` (so `~/.cache/irb/blobs` pairs with `~/.cache/irb/index`), else
 * `<dir>-index` beside it (`IRB_CACHE_DIR=/var/cache/irb` pairs with `/var/cache/irb-index`).
 */
export function indexCacheDirFor(blobCacheDir: string): string {
  const dir = resolve(blobCacheDir);
  const name = basename(dir);
  return join(dirname(dir), name === 'blobs' ? 'index' : `${name}-index`);
}

/** The automatic cache limit when `IRB_CACHE_MAX_SIZE` is not set: 10 GiB. */
export const DEFAULT_CACHE_MAX_BYTES = 10 * 1024 ** 3;

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1000 ** 4,
};

/**
 * Parses a byte size: a number with an optional unit, `K`/`M`/`G`/`T` and `KiB`… being powers
 * of 1024, `KB`/`MB`/`GB`/`TB` powers of 1000 (as GNU `du` and `sort` read them). Case does not
 * matter. `undefined` when the text is not a size.
 */
export function parseByteSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match ? UNITS[(match[2] as string).toLowerCase()] : undefined;
  if (!match || unit === undefined) return undefined;
  const bytes = Math.floor(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

const DURATIONS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** Parses a duration such as `90s`, `30m`, `12h`, `7d` or `2w` into milliseconds; `undefined` otherwise. */
export function parseDuration(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/i.exec(text);
  if (!match) return undefined;
  const ms = Math.round(Number(match[1]) * (DURATIONS[(match[2] as string).toLowerCase()] as number));
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/**
 * The automatic cache limit in bytes: `IRB_CACHE_MAX_SIZE` (a size as {@link parseByteSize}
 * reads it, or `off` for no limit), else {@link DEFAULT_CACHE_MAX_BYTES}. `undefined` means off.
 * Throws `IRB_OPTION_INVALID` for a value that is neither.
 */
export function cacheMaxBytes(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.IRB_CACHE_MAX_SIZE;
  if (raw === undefined || raw.trim() === '') return DEFAULT_CACHE_MAX_BYTES;
  if (/^\s*(off|none|unlimited)\s*$/i.test(raw)) return undefined;
  const bytes = parseByteSize(raw);
  if (bytes === undefined) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `IRB_CACHE_MAX_SIZE="${raw}" is not a size; use e.g. 10G, 500M, 2GB or off`,
    );
  }
  return bytes;
}

const STORAGE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'EIO']);

function fixFor(code: string): string {
  return code === 'ENOSPC' || code === 'EDQUOT'
    ? 'free space there, or set `cacheDir` to a directory on another disk, or pass `cache: false`'
    : 'set `cacheDir` to a writable directory or pass `cache: false`';
}

/**
 * Wraps a filesystem failure while writing the cache in an `IRB_CACHE_WRITE_FAILED` that says
 * where and how to fix it; other errors pass through unchanged.
 */
export function cacheWriteError(dir: string, error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (!code || !STORAGE_CODES.has(code)) return error;
  const why =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'the disk is full'
      : code === 'EIO'
        ? 'the disk reported an I/O error'
        : 'it is not writable';
  return new IrbError(
    'IRB_CACHE_WRITE_FAILED',
    `cannot write the blob cache at ${dir}: ${why} (${code}); ${fixFor(code)}`,
    {
      cause: error,
    },
  );
}

/**
 * Creates `dir` and its missing parents, or throws `IRB_CACHE_WRITE_FAILED` at once naming
 * `option`. Each level is tried at most twice. Node's `mkdir(…, { recursive: true })` is not
 * used: under `/proc` it never returns (mkdir of the child says ENOENT, of the parent EEXIST,
 * and it retries the child forever).
 */
export async function ensureCacheDirectory(dir: string, what = 'the blob cache', root = dir): Promise<void> {
  try {
    await makeDirectory(resolve(dir));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
    const why =
      code === 'ENOENT'
        ? 'the parent directory does not accept new directories'
        : code === 'ENOTDIR' || code === 'EEXIST'
          ? 'a part of the path is not a directory'
          : code === 'ENOSPC' || code === 'EDQUOT'
            ? 'the disk is full'
            : code === 'EIO'
              ? 'the disk reported an I/O error'
              : 'it is not writable';
    throw new IrbError(
      'IRB_CACHE_WRITE_FAILED',
      `cannot create ${what} at ${root}: ${why} (${code}); ${fixFor(code)}`,
      { cause: error },
    );
  }
}

async function makeDirectory(path: string): Promise<void> {
  const attempt = async (): Promise<boolean> => {
    try {
      await mkdir(path);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        if ((await stat(path)).isDirectory()) return true;
        throw Object.assign(new Error(`${path} exists and is not a directory`), { code: 'ENOTDIR' });
      }
      if (code === 'ENOENT') return false;
      throw error;
    }
  };
  if (await attempt()) return;
  const parent = dirname(path);
  if (parent === path) throw Object.assign(new Error(`cannot create ${path}`), { code: 'ENOENT' });
  await makeDirectory(parent);
  // The parent exists now; a second ENOENT means this filesystem refuses the name (e.g. /proc).
  if (!(await attempt())) {
    throw Object.assign(new Error(`mkdir ${path}: the parent exists but refuses new entries`), {
      code: 'ENOENT',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Who owns a temp file: pid + process start time + pid namespace, so a reused pid is not mistaken
// for the writer, and a writer in another container is never judged from here.

let ownToken: string | undefined;

function procStartTime(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

function pidNamespace(): string {
  try {
    return /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? '0';
  } catch {
    return '0';
  }
}

/**
 * This process as a token `<pid>-<start>-<pidns>` (start time in clock ticks since boot from
 * `/proc/<pid>/stat`, `0` where unknown). Written into the names of temp files, leases and locks
 * so {@link isOwnerAlive} can tell whether their writer still runs.
 */
export function processToken(): string {
  ownToken ??= `${process.pid}-${procStartTime(process.pid) ?? '0'}-${pidNamespace()}`;
  return ownToken;
}

/**
 * Whether the process a {@link processToken} (or a bare pid) names is still running: `false`
 * when it is gone or its pid now belongs to a process started at another time, `true` when it
 * runs, `undefined` when this process cannot tell (another pid namespace).
 */
export function isOwnerAlive(token: string): boolean | undefined {
  const match = /^(\d+)(?:-(\d+)-(\d+))?$/.exec(token);
  if (!match) return undefined;
  const pid = Number(match[1]);
  const [, , start, ns] = match;
  if (ns !== undefined && ns !== '0' && pidNamespace() !== '0' && ns !== pidNamespace()) return undefined;
  const now = procStartTime(pid);
  if (now !== undefined) return start === undefined || start === '0' || start === now;
  try {
    process.kill(pid, 0);
    // Running, but without /proc the start time cannot be compared: assume it is the writer.
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Files whose owner cannot be judged (another container) are left alone for this long. */
const UNKNOWN_OWNER_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** True when a file written by `owner` (last modified at `mtimeMs`) is an orphan to remove. */
function orphaned(owner: string | undefined, mtimeMs: number, now = Date.now()): boolean {
  const alive = owner === undefined ? undefined : isOwnerAlive(owner);
  if (alive === undefined) return mtimeMs < now - UNKNOWN_OWNER_MAX_AGE_MS;
  return !alive;
}

// ---------------------------------------------------------------------------------------------
// Leases and the prune lock.
//
// A process using a persistent cache appends each digest it touches to its own lease file,
// `<dir>/.leases/<token>.<random>.lease`, BEFORE it looks at the blob, and then waits while a
// live prune holds `<dir>/.prune.lock`. A prune takes the lock, then reads the leases, and removes
// only blobs no live lease names. Either the prune read the leases after the digest was added
// (it keeps the blob), or it held the lock when the user checked (the user waits for it to end,
// then finds the blob present or downloads it again): a blob in use is never removed under it.

const LEASES = '.leases';
const PRUNE_LOCK = '.prune.lock';
const TMP = '.tmp';

const liveLeaseFiles = new Set<string>();
const temporaryDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const dir of temporaryDirs) rmSync(dir, { recursive: true, force: true });
    for (const file of liveLeaseFiles) {
      try {
        unlinkSync(file);
      } catch {}
    }
  });
}

async function lockOwner(dir: string): Promise<{ owner: string; mtimeMs: number } | undefined> {
  const path = join(dir, PRUNE_LOCK);
  try {
    const [owner, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { owner: owner.trim(), mtimeMs: info.mtimeMs };
  } catch {
    return undefined;
  }
}

/** Removes a lock whose owner is gone, without removing a live lock taken meanwhile. */
async function breakStaleLock(dir: string): Promise<void> {
  const path = join(dir, PRUNE_LOCK);
  const aside = join(dir, `${PRUNE_LOCK}.stale.${randomBytes(6).toString('hex')}`);
  try {
    await rename(path, aside);
  } catch {
    return;
  }
  const owner = (await readFile(aside, 'utf8').catch(() => '')).trim();
  const info = await stat(aside).catch(() => undefined);
  if (owner && info && !orphaned(owner, info.mtimeMs)) {
    // We moved a live lock taken after we looked: put it back (unless yet another exists).
    await link(aside, path).catch(() => undefined);
  }
  await unlink(aside).catch(() => undefined);
}

/** Prunes running in this process, by resolved cache directory. */
const ownPrunes = new Map<string, Promise<unknown>>();

/** How long a user of the cache waits for another process's prune before it gives up. */
const PRUNE_WAIT_MS = 2 * 60_000;

/** Waits while a live prune holds the lock (a dead holder's lock is broken). */
async function waitForPrune(dir: string, waitMs = PRUNE_WAIT_MS): Promise<void> {
  const started = Date.now();
  for (;;) {
    const lock = await lockOwner(dir);
    if (!lock) return;
    if (lock.owner === processToken()) {
      // Our own lock: wait for the prune of this process that holds it, not for a pid.
      await ownPrunes.get(resolve(dir))?.catch(() => undefined);
      return;
    }
    if (orphaned(lock.owner, lock.mtimeMs)) {
      await breakStaleLock(dir);
      continue;
    }
    // A prune takes seconds; one holding the lock for minutes is stopped or stuck: say which.
    if (Date.now() - started > waitMs) {
      throw new IrbError(
        'IRB_CACHE_BUSY',
        `process ${lock.owner.split('-')[0]} has held the prune lock of the cache at ${dir} for over ${Math.round(waitMs / 1000)} s; wait for it to finish or stop it, or set \`cacheDir\` to another directory`,
      );
    }
    await sleep(20);
  }
}

/** Takes the prune lock; `false` when another live process holds it. */
async function acquirePruneLock(dir: string): Promise<boolean> {
  const path = join(dir, PRUNE_LOCK);
  const temp = join(dir, `${PRUNE_LOCK}.${processToken()}.${randomBytes(6).toString('hex')}`);
  await writeFile(temp, `${processToken()}\n`);
  try {
    for (let round = 0; round < 3; round++) {
      try {
        // link() fails with EEXIST when the lock exists, and a lock is whole when visible.
        await link(temp, path);
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const lock = await lockOwner(dir);
      if (lock && !orphaned(lock.owner, lock.mtimeMs)) return false;
      await breakStaleLock(dir);
    }
    return false;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

async function releasePruneLock(dir: string): Promise<void> {
  const lock = await lockOwner(dir);
  if (lock?.owner === processToken()) await unlink(join(dir, PRUNE_LOCK)).catch(() => undefined);
}

/** A file being written into the cache; becomes visible only through {@link BlobCache.commit}. */
export interface StagedBlob {
  path: string;
  digest: string;
}

/** Options for a {@link BlobCache}. */
export interface BlobCacheOptions {
  /** A per-process store in a temp dir removed by {@link BlobCache.dispose}. Default false. */
  temporary?: boolean;
  /**
   * Limit applied by {@link BlobCache.dispose} when this cache stored a blob: least recently used
   * blobs and layer indexes are removed until the cache is under it. Default {@link cacheMaxBytes}
   * (`IRB_CACHE_MAX_SIZE`, else 10 GiB); `false` turns the limit off.
   */
  maxBytes?: number | false;
  /** The layer index directory counted and trimmed with the blobs. Default {@link indexCacheDirFor}`(dir)`. */
  indexDir?: string | false;
  /**
   * How long to wait for another process's prune before failing with `IRB_CACHE_BUSY`. Default
   * two minutes (a prune takes seconds; longer means it is stopped or stuck).
   */
  pruneWaitMs?: number;
}

/**
 * A content-addressed blob store: `<dir>/<algorithm>/<hex>`.
 *
 * Blobs are written to a uniquely named file in `<dir>/.tmp` (same filesystem), verified,
 * then renamed into place. Rename is atomic, so readers see either nothing or a complete
 * verified blob, and two processes fetching the same blob each write their own temp file and
 * both renames succeed with identical content. Reads verify again, and a blob that fails (disk
 * corruption, tampering) is removed. Every blob a persistent store touches is leased (see
 * {@link pruneCache}) and its mtime set to now: the mtime is the blob's last use.
 */
export class BlobCache {
  /** Root directory of the store. */
  readonly dir: string;
  /** True when the store lives in a per-process temp dir removed by {@link dispose}. */
  readonly temporary: boolean;
  readonly #maxBytes: number | undefined;
  readonly #indexDir: string | false;
  readonly #pruneWaitMs: number | undefined;
  #disposed = false;
  #swept: Promise<void> | undefined;
  #leaseFile: Promise<string> | undefined;
  #leases = new Map<string, Promise<void>>();
  #stored = false;

  constructor(dir: string, options: BlobCacheOptions = {}) {
    this.dir = dir;
    this.temporary = options.temporary === true;
    this.#indexDir = options.indexDir ?? indexCacheDirFor(dir);
    this.#pruneWaitMs = options.pruneWaitMs;
    // Read now, so a bad IRB_CACHE_MAX_SIZE fails before any download rather than after.
    this.#maxBytes =
      this.temporary || options.maxBytes === false ? undefined : (options.maxBytes ?? cacheMaxBytes());
    if (this.temporary) temporaryDirs.add(dir);
    installExitHook();
  }

  /** A store in a fresh temp dir, removed on {@link dispose} or at process exit (used when caching is off). */
  static async createTemporary(): Promise<BlobCache> {
    const dir = await mkdtemp(join(tmpdir(), 'irb-blobs-'));
    return new BlobCache(dir, { temporary: true });
  }

  /** Where a blob lives (whether or not it is there). */
  path(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, algorithm, hex);
  }

  /** True when the blob is stored with the expected size (content is verified on read). */
  async has(digest: string, size?: number): Promise<boolean> {
    await this.#lease(digest);
    try {
      const info = await stat(this.path(digest));
      return info.isFile() && (size === undefined || info.size === size);
    } catch {
      return false;
    }
  }

  /** A small blob's bytes, verified; `undefined` when absent or corrupt (then it is removed). */
  async readBytes(digest: string, size?: number): Promise<Uint8Array | undefined> {
    await this.#lease(digest);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(this.path(digest)));
    } catch {
      return undefined;
    }
    try {
      verifyBytes(bytes, size === undefined ? { digest } : { digest, size });
      return bytes;
    } catch {
      await rm(this.path(digest), { force: true });
      return undefined;
    }
  }

  /** Stores bytes already verified against `digest` by the caller (verified again here). */
  async writeBytes(digest: string, bytes: Uint8Array): Promise<void> {
    verifyBytes(bytes, { digest, size: bytes.byteLength });
    const staged = await this.stage(digest);
    try {
      try {
        const handle = await open(staged.path, 'w');
        try {
          // Not synced: reads verify the digest (see the download path in client.ts).
          await handle.writeFile(bytes);
        } finally {
          await handle.close();
        }
      } catch (error) {
        throw cacheWriteError(this.dir, error);
      }
      await this.commit(staged);
    } finally {
      await rm(staged.path, { force: true });
    }
  }

  /**
   * A new unique temp file path for a blob about to be downloaded, named after this process
   * ({@link processToken}) so a later run can tell an orphan from a download in progress.
   */
  async stage(digest: string): Promise<StagedBlob> {
    this.#assertOpen();
    const { hex } = parseDigest(digest);
    await ensureCacheDirectory(join(this.dir, TMP), 'the blob cache', this.dir);
    await this.#lease(digest);
    await this.#sweepOnce();
    return {
      path: join(
        this.dir,
        TMP,
        `${hex.slice(0, 16)}.${processToken()}.${randomBytes(6).toString('hex')}.partial`,
      ),
      digest,
    };
  }

  /**
   * Removes partial downloads whose writer is gone: killed (its pid runs no more, or runs a
   * process started at another time). Files of a writer in another pid namespace, which this
   * process cannot judge, are removed after a day. Best effort; returns how many were removed.
   */
  async sweep(): Promise<number> {
    return sweepPartials(this.dir);
  }

  /** Moves a fully written and verified staged file into place (atomic). */
  async commit(staged: StagedBlob): Promise<void> {
    const target = this.path(staged.digest);
    await ensureCacheDirectory(dirname(target), 'the blob cache', this.dir);
    try {
      await rename(staged.path, target);
    } catch (error) {
      throw cacheWriteError(this.dir, error);
    }
    this.#stored = true;
  }

  /**
   * Streams a stored blob, verifying size and digest as it goes; when the bytes turn out
   * corrupt the blob is removed and the stream throws `IRB_DIGEST_MISMATCH`/`IRB_SIZE_MISMATCH`.
   */
  async *open(
    digest: string,
    size: number,
    signal?: AbortSignal,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    await this.#lease(digest);
    const path = this.path(digest);
    const stream = createReadStream(path, { highWaterMark: 256 * 1024, ...(signal ? { signal } : {}) });
    try {
      for await (const chunk of verifyStream(stream as AsyncIterable<Buffer>, {
        digest,
        size,
        what: `cached blob ${digest}`,
      })) {
        yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const code = (error as { code?: string }).code;
      if (code === 'IRB_DIGEST_MISMATCH' || code === 'IRB_SIZE_MISMATCH') {
        await unlink(path).catch(() => undefined);
        throw new IrbError(
          code,
          `cached blob ${digest} is corrupt and was removed from the cache (${this.dir}); run again to download it afresh`,
          { cause: error },
        );
      }
      if (code === 'ENOENT') {
        throw new IrbError(
          'IRB_CACHE_MISS',
          `blob ${digest} disappeared from the cache (${this.dir}) while in use; run again`,
          { cause: error },
        );
      }
      throw error;
    } finally {
      stream.destroy();
    }
  }

  /**
   * Ends this process's use of the store. A temporary store is removed. A persistent one that
   * stored a blob is trimmed to its limit (least recently used first; what this process used
   * stays), then its lease is released. Trimming is best effort and never fails the caller.
   */
  async dispose(): Promise<void> {
    if (this.temporary) {
      if (this.#disposed) return;
      this.#disposed = true;
      temporaryDirs.delete(this.dir);
      await rm(this.dir, { recursive: true, force: true });
      return;
    }
    await Promise.allSettled(this.#leases.values());
    if (this.#stored && this.#maxBytes !== undefined) {
      this.#stored = false;
      await pruneCache(this.dir, { maxBytes: this.#maxBytes, indexDir: this.#indexDir, busy: 'skip' }).catch(
        () => undefined,
      );
    }
    const file = await this.#leaseFile?.catch(() => undefined);
    this.#leaseFile = undefined;
    this.#leases.clear();
    if (file) {
      liveLeaseFiles.delete(file);
      await unlink(file).catch(() => undefined);
    }
  }

  /** Records `digest` as in use by this process (once per digest) and marks it used now. */
  #lease(digest: string): Promise<void> {
    if (this.temporary) return Promise.resolve();
    let pending = this.#leases.get(digest);
    if (!pending) {
      pending = this.#writeLease(digest);
      this.#leases.set(digest, pending);
    }
    return pending;
  }

  async #writeLease(digest: string): Promise<void> {
    const path = this.path(digest);
    try {
      // One lease file per cache object, created once even when many blobs are leased at once.
      this.#leaseFile ??= this.#createLeaseFile();
      await appendFile(await this.#leaseFile, `${digest}\n`);
    } catch {
      // A cache this process cannot write is one no other user can prune either: reading goes on.
      return;
    }
    try {
      await waitForPrune(this.dir, this.#pruneWaitMs);
    } catch (error) {
      // Asked again next time: the lease is written, only the wait failed.
      this.#leases.delete(digest);
      throw error;
    }
    await this.#sweepOnce();
    // The mtime is the last use, set once per process and blob: no scan, no atime dependence.
    const now = new Date();
    await utimes(path, now, now).catch(() => undefined);
  }

  async #createLeaseFile(): Promise<string> {
    await ensureCacheDirectory(join(this.dir, LEASES), 'the blob cache', this.dir);
    const file = join(this.dir, LEASES, `${processToken()}.${randomBytes(6).toString('hex')}.lease`);
    liveLeaseFiles.add(file);
    return file;
  }

  #sweepOnce(): Promise<void> {
    this.#swept ??= sweepPartials(this.dir).then(
      () => undefined,
      () => undefined,
    );
    return this.#swept;
  }

  #assertOpen(): void {
    if (this.temporary && this.#disposed) {
      throw new IrbError('IRB_CLIENT_CLOSED', 'the registry client was closed; create a new one');
    }
  }
}

/** `<hex16>.<owner>.<random>.partial`; older versions wrote a bare pid as the owner. */
const PARTIAL = /^[0-9a-f]+\.(\d+(?:-\d+-\d+)?)\.[0-9a-f]+\.partial$/;

async function sweepPartials(dir: string): Promise<number> {
  const tmp = join(dir, TMP);
  let removed = 0;
  const now = Date.now();
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    if (!name.endsWith('.partial')) continue;
    const path = join(tmp, name);
    const info = await stat(path).catch(() => undefined);
    if (info && orphaned(PARTIAL.exec(name)?.[1], info.mtimeMs, now)) {
      await rm(path, { force: true });
      removed++;
    }
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Listing and pruning.

/** One entry of the cache: a blob or a layer index. */
export interface CacheEntry {
  /** `blob` (`<dir>/<algorithm>/<hex>`) or `index` (parsed layer headers, in the index directory). */
  kind: 'blob' | 'index';
  /** The blob's digest; for an index, the digest of the layer it describes (absent for old entries). */
  digest?: string;
  /** Where it is stored. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** Last use: last read or write by irb (the file's newer of mtime and atime). */
  lastUsed: Date;
  /** True when a running process holds a lease on it (a prune keeps it). */
  inUse: boolean;
}

/** Options of {@link listCache} and {@link pruneCache}. */
export interface ListCacheOptions {
  /** The layer index directory listed with the blobs. Default {@link indexCacheDirFor}`(dir)`; `false` skips it. */
  indexDir?: string | false;
}

/** Index entries named `<algorithm>-<hex>.<keyhash>.idx` carry their layer's digest. */
const INDEX_NAME = /^([a-z0-9]+)-([a-zA-Z0-9=_-]+)\.[0-9a-f]+\.idx$/;

async function liveLeases(dir: string, sweep: boolean): Promise<Set<string>> {
  const leased = new Set<string>();
  const leases = join(dir, LEASES);
  const now = Date.now();
  for (const name of await readdir(leases).catch(() => [] as string[])) {
    const path = join(leases, name);
    const owner = /^(\d+-\d+-\d+)\./.exec(name)?.[1];
    const info = await stat(path).catch(() => undefined);
    if (!info) continue;
    if (orphaned(owner, info.mtimeMs, now)) {
      if (sweep) await unlink(path).catch(() => undefined);
      continue;
    }
    const text = await readFile(path, 'utf8').catch(() => '');
    for (const line of text.split('\n')) if (line) leased.add(line);
  }
  return leased;
}

async function scan(dir: string, options: ListCacheOptions, leased: Set<string>): Promise<CacheEntry[]> {
  const entries: CacheEntry[] = [];
  const add = async (path: string, kind: CacheEntry['kind'], digest: string | undefined) => {
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) return;
    entries.push({
      kind,
      ...(digest !== undefined ? { digest } : {}),
      path,
      size: info.size,
      lastUsed: new Date(Math.max(info.mtimeMs, info.atimeMs)),
      inUse: kind === 'blob' && digest !== undefined && leased.has(digest),
    });
  };
  for (const algorithm of await readdir(dir).catch(() => [] as string[])) {
    // Dot directories are bookkeeping (.tmp, .leases); everything else is an algorithm.
    if (algorithm.startsWith('.') || !/^[a-z0-9]+$/.test(algorithm)) continue;
    const sub = join(dir, algorithm);
    for (const hex of await readdir(sub).catch(() => [] as string[])) {
      await add(join(sub, hex), 'blob', `${algorithm}:${hex}`);
    }
  }
  const indexDir = options.indexDir ?? indexCacheDirFor(dir);
  if (indexDir !== false) {
    for (const name of await readdir(indexDir).catch(() => [] as string[])) {
      if (!name.endsWith('.idx')) continue;
      const match = INDEX_NAME.exec(name);
      await add(join(indexDir, name), 'index', match ? `${match[1]}:${match[2]}` : undefined);
    }
  }
  return entries;
}

/**
 * Lists the blobs of a cache directory and the layer indexes beside it, most recently used
 * first. A missing directory lists as empty.
 */
export async function listCache(dir: string, options: ListCacheOptions = {}): Promise<CacheEntry[]> {
  const entries = await scan(dir, options, await liveLeases(dir, false));
  return entries.sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime() || a.path.localeCompare(b.path));
}

/** Options for {@link pruneCache}. */
export interface PruneCacheOptions extends ListCacheOptions {
  /** Remove least recently used entries until the total is at most this many bytes. */
  maxBytes?: number;
  /** Remove entries not used for longer than this many milliseconds. */
  olderThanMs?: number;
  /**
   * What to do when another live process is pruning the same cache: `wait` for it to finish
   * (default), or `skip` (return at once; what `BlobCache.dispose` does).
   */
  busy?: 'wait' | 'skip';
  /** Stops waiting for another prune. */
  signal?: AbortSignal;
}

/** What {@link pruneCache} did. */
export interface PruneCacheResult {
  /** The entries removed, least recently used first. */
  removed: CacheEntry[];
  /** Bytes freed by removing them. */
  removedBytes: number;
  /** Entries left, and their total size. */
  kept: number;
  keptBytes: number;
  /** Entries kept because a running build uses them, though the limits would have removed them. */
  keptInUse: number;
  /** Partial downloads, leases and index temp files of killed processes that were removed. */
  orphansRemoved: number;
  /** True when another process was pruning and `busy: 'skip'` returned without doing anything. */
  skipped: boolean;
}

/**
 * Trims a cache directory (blobs and the layer index directory beside it): removes entries unused
 * for longer than `olderThanMs`, then least recently used entries until the total is at most
 * `maxBytes`. Blobs that a running process leased (it is reading or writing them) are never
 * removed; downloads in progress are never touched, while the leftovers of killed processes are.
 * One prune runs at a time per cache (a lock file holding the pruner's {@link processToken}).
 */
export async function pruneCache(dir: string, options: PruneCacheOptions = {}): Promise<PruneCacheResult> {
  const key = resolve(dir);
  // One prune per directory in this process; a second waits for the first (or skips).
  for (;;) {
    const running = ownPrunes.get(key);
    if (!running) break;
    if (options.busy === 'skip') return { ...emptyResult(), skipped: true };
    await running.catch(() => undefined);
  }
  const task = prune(dir, options);
  ownPrunes.set(key, task);
  try {
    return await task;
  } finally {
    if (ownPrunes.get(key) === task) ownPrunes.delete(key);
  }
}

function emptyResult(): PruneCacheResult {
  return {
    removed: [],
    removedBytes: 0,
    kept: 0,
    keptBytes: 0,
    keptInUse: 0,
    orphansRemoved: 0,
    skipped: false,
  };
}

async function prune(dir: string, options: PruneCacheOptions): Promise<PruneCacheResult> {
  const result = emptyResult();
  if (
    !(await stat(dir).then(
      (s) => s.isDirectory(),
      () => false,
    ))
  )
    return result;
  for (;;) {
    options.signal?.throwIfAborted();
    let acquired: boolean;
    try {
      acquired = await acquirePruneLock(dir);
    } catch (error) {
      throw cacheWriteError(dir, error);
    }
    if (acquired) break;
    if (options.busy === 'skip') return { ...result, skipped: true };
    await sleep(50, undefined, options.signal ? { signal: options.signal } : {});
  }
  try {
    result.orphansRemoved += await sweepPartials(dir);
    const indexDir = options.indexDir ?? indexCacheDirFor(dir);
    if (indexDir !== false) result.orphansRemoved += await sweepIndexTemps(indexDir);
    // Leases are read under the lock: see the protocol above BlobCache.
    const leased = await liveLeases(dir, true);
    const entries = (await scan(dir, { indexDir }, leased)).sort(
      (a, b) => a.lastUsed.getTime() - b.lastUsed.getTime() || a.path.localeCompare(b.path),
    );
    let total = entries.reduce((sum, e) => sum + e.size, 0);
    const cutoff = options.olderThanMs !== undefined ? Date.now() - options.olderThanMs : undefined;
    for (const entry of entries) {
      const old = cutoff !== undefined && entry.lastUsed.getTime() < cutoff;
      const over = options.maxBytes !== undefined && total > options.maxBytes;
      if (!old && !over) {
        result.kept++;
        result.keptBytes += entry.size;
        continue;
      }
      if (entry.inUse) {
        result.kept++;
        result.keptBytes += entry.size;
        result.keptInUse++;
        continue;
      }
      try {
        await unlink(entry.path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw cacheWriteError(dir, error);
      }
      total -= entry.size;
      result.removed.push(entry);
      result.removedBytes += entry.size;
    }
  } finally {
    await releasePruneLock(dir);
  }
  return result;
}

/** Temp files of the index cache are `<entry>.<pid>.<random>.tmp`, renamed within milliseconds. */
async function sweepIndexTemps(indexDir: string): Promise<number> {
  let removed = 0;
  const now = Date.now();
  for (const name of await readdir(indexDir).catch(() => [] as string[])) {
    if (!name.endsWith('.tmp')) continue;
    const path = join(indexDir, name);
    const info = await stat(path).catch(() => undefined);
    const owner = /\.(\d+(?:-\d+-\d+)?)\.[0-9a-f]+\.tmp$/.exec(name)?.[1];
    if (info && orphaned(owner, info.mtimeMs, now)) {
      await rm(path, { force: true });
      removed++;
    }
  }
  return removed;
}
