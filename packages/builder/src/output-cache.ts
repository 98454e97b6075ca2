import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, open, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { cacheMaxBytes, processToken, pruneCache } from '@irb/registry';
import { type BaseSnapshotHeader, type BaseTree, decodeBaseHeader, decodeBaseSnapshot } from './base-tree.ts';
import type { MemberSink, MemberStats } from './pipeline.ts';
import { holdsExactly } from './same-bytes.ts';
import type { BuildSummary } from './types.ts';

/*
 * The output cache: built members by key, beside the blob cache (`~/.cache/irb/output`, or
 * `<cacheDir>-output`).
 * - Base members, by base key (build-key.ts `baseKey`), two files:
 *   <key>.base  the compressed base member, byte for byte as it went into the output;
 *   <key>.tree  what overlay planning needs from the base (names, kinds, link targets, modes,
 *               /etc/passwd and /etc/group) and the summary's facts (base-tree.ts).
 * - Overlay members, by overlay key (`overlayKey`: the base key plus the overlay's options and
 *   the digests of the files it holds), two files:
 *   <key>.overlay  the compressed overlay member;
 *   <key>.meta     what the summary says of it (counts, where /init came from, warnings);
 *   <key>.out      the output file last found holding base + overlay (path, identity, times):
 *                  see {@link outputUpToDate}.
 * An unchanged rebuild finds both: it copies the base, appends the overlay and plans, packs and
 * compresses nothing.
 * Each file is written to `<name>.<owner>.<random>.tmp` and renamed, the description (`.tree`,
 * `.meta`) before the bytes; a build uses a key only when both are there. Builds of one key may
 * race: they write the same bytes, and the last rename wins. `irb cache ls/prune` list them as
 * kind `output`, the automatic size limit counts them, and a prune removes the temp files of
 * killed writers.
 */

/** A usable cached base member. */
export interface CachedBase {
  /** A private hard link to `<key>.base`: a prune that removes the entry meanwhile cannot take it away. */
  path: string;
  header: BaseSnapshotHeader;
  /** The stored tree, decoded on first use; `undefined` when it is malformed (treat as a miss). */
  tree(): BaseTree | undefined;
  /** Removes the private link. */
  release(): Promise<void>;
}

/** What the summary says of a cached overlay member. */
export interface OverlayMeta {
  stats: MemberStats;
  init: BuildSummary['init'];
  initKind?: 'static' | 'sh';
  command?: string[];
  warnings: string[];
}

/** A usable cached overlay member. */
export interface CachedOverlay {
  /** A private hard link to `<key>.overlay` (see {@link CachedBase.path}). */
  path: string;
  meta: OverlayMeta;
  release(): Promise<void>;
}

function tempPath(path: string): string {
  return `${path}.${processToken()}.${randomBytes(6).toString('hex')}.tmp`;
}

/**
 * Takes a private hard link to the bytes of an entry whose description is `description`, and
 * marks both used now (last use is the mtime, as for blobs: a hit keeps the entry from the
 * least-recently-used end). `undefined` when the bytes are gone or not `size` long (a damaged
 * entry is a miss).
 */
async function holdEntry(bytesPath: string, description: string, size: number): Promise<string | undefined> {
  const path = tempPath(bytesPath);
  try {
    await link(bytesPath, path);
  } catch {
    return undefined;
  }
  if ((await stat(path).catch(() => undefined))?.size !== size) {
    await unlink(path).catch(() => {});
    return undefined;
  }
  const now = new Date();
  await Promise.all([utimes(bytesPath, now, now), utimes(description, now, now)]).catch(() => {});
  return path;
}

/** The cached base member of `key`, or `undefined` (missing, half there, or unreadable: all misses). */
export async function lookupBase(dir: string, key: string): Promise<CachedBase | undefined> {
  const treePath = join(dir, `${key}.tree`);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(treePath);
  } catch {
    return undefined;
  }
  const header = decodeBaseHeader(bytes);
  if (!header) return undefined;
  const path = await holdEntry(join(dir, `${key}.base`), treePath, header.stats.compressedBytes);
  if (path === undefined) return undefined;
  let tree: BaseTree | undefined;
  return {
    path,
    header,
    tree: () => {
      tree ??= decodeBaseSnapshot(bytes)?.tree;
      return tree;
    },
    release: () => unlink(path).catch(() => {}),
  };
}

/** The cached overlay member of `key`, or `undefined` (all failures are misses). */
export async function lookupOverlay(dir: string, key: string): Promise<CachedOverlay | undefined> {
  const metaPath = join(dir, `${key}.meta`);
  let meta: OverlayMeta & { v?: number };
  try {
    meta = JSON.parse(await readFile(metaPath, 'utf8'));
  } catch {
    return undefined;
  }
  if (meta.v !== 1 || typeof meta.stats !== 'object' || !Array.isArray(meta.warnings)) return undefined;
  const { v: _v, ...rest } = meta;
  const path = await holdEntry(join(dir, `${key}.overlay`), metaPath, rest.stats.compressedBytes);
  if (path === undefined) return undefined;
  return { path, meta: rest, release: () => unlink(path).catch(() => {}) };
}

/**
 * A sink that stores a member as it streams into the output: its bytes under `<key>.<bytesExt>`
 * and, once it ended, the description `describe` returns under `<key>.<descriptionExt>`
 * (`undefined`: store nothing). Best effort: a write that fails (disk full, …) drops the entry
 * and never fails the build. `abort()` removes the temp file when the build did not finish.
 */
function createEntrySink(
  dir: string,
  key: string,
  exts: { bytes: string; description: string },
  describe: (stats: MemberStats) => Promise<Uint8Array | undefined>,
  blobsDir: string,
): MemberSink & { abort(): Promise<void> } {
  const final = join(dir, `${key}.${exts.bytes}`);
  const temp = tempPath(final);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let failed = false;
  let done = false;
  const drop = async () => {
    failed = true;
    await handle?.close().catch(() => {});
    handle = undefined;
    await unlink(temp).catch(() => {});
  };
  const openTemp = () => open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  return {
    async write(chunk) {
      if (failed) return;
      try {
        handle ??= await openTemp();
        let offset = 0;
        while (offset < chunk.byteLength) {
          offset += (await handle.write(chunk, offset, chunk.byteLength - offset)).bytesWritten;
        }
      } catch {
        await drop();
      }
    },
    async end(stats) {
      if (failed) return;
      try {
        handle ??= await openTemp();
        await handle.close();
        handle = undefined;
        const description = await describe(stats);
        if (description === undefined) {
          await drop();
          return;
        }
        const descriptionPath = join(dir, `${key}.${exts.description}`);
        const descriptionTemp = tempPath(descriptionPath);
        await writeNew(descriptionTemp, description);
        await rename(descriptionTemp, descriptionPath).catch(async (error) => {
          await unlink(descriptionTemp).catch(() => {});
          throw error;
        });
        await rename(temp, final);
        done = true;
      } catch {
        await drop();
        return;
      }
      // The output cache counts toward the automatic limit, like blobs and layer indexes.
      const maxBytes = cacheMaxBytes();
      if (maxBytes !== undefined) await pruneCache(blobsDir, { maxBytes, busy: 'skip' }).catch(() => {});
    },
    async abort() {
      if (!done && !failed) await drop();
    },
  };
}

/** A sink that stores the base member of `key` and its tree snapshot (`snapshot`). */
export function createBaseSink(
  dir: string,
  key: string,
  snapshot: (stats: MemberStats) => Promise<Uint8Array>,
  blobsDir: string,
): MemberSink & { abort(): Promise<void> } {
  return createEntrySink(dir, key, { bytes: 'base', description: 'tree' }, snapshot, blobsDir);
}

/**
 * A sink that stores the overlay member of `key` with what the summary says of it. `stillValid`
 * is asked at the end: the key holds digests of host files, and a file that changed while the
 * member was packed must not be cached under the old digest.
 */
export function createOverlaySink(
  dir: string,
  key: string,
  meta: Omit<OverlayMeta, 'stats'>,
  stillValid: () => Promise<boolean>,
  blobsDir: string,
): MemberSink & { abort(): Promise<void> } {
  return createEntrySink(
    dir,
    key,
    { bytes: 'overlay', description: 'meta' },
    async (stats) =>
      (await stillValid()) ? new TextEncoder().encode(JSON.stringify({ v: 1, ...meta, stats })) : undefined,
    blobsDir,
  );
}

async function writeNew(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    await handle.writeFile(bytes);
  } finally {
    await handle.close();
  }
}

/** What {@link outputUpToDate} saw of an output it found holding a key's bytes. */
interface OutputRecord {
  path: string;
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  /** When it was seen (wall clock, ms). */
  seenAtMs: number;
}

/**
 * How long before a record was made the file's ctime must lie for the record to be trusted.
 * File times come from a coarse clock (one tick, up to 10 ms): a change made in the tick of the
 * last change can leave ctime as it was, so a file seen that soon after a change is compared
 * again rather than trusted (git's "racily clean" entries).
 */
const SETTLED_MS = 50;

/**
 * True when `output` already holds exactly the bytes of `parts` (the cached members of overlay
 * key `key` and the trailer member). Trusts the record `<key>.out` (written
 * by an earlier call that compared the bytes) when the file's identity and times are unchanged
 * since — ctime moves on any write, chmod or rename and cannot be set back — and otherwise
 * compares byte for byte ({@link holdsExactly}), recording what it saw when they are equal. The
 * file is never written, nor its times touched.
 */
export async function outputUpToDate(
  dir: string,
  key: string,
  output: string,
  parts: ReadonlyArray<string | Uint8Array>,
): Promise<boolean> {
  const recordPath = join(dir, `${key}.out`);
  const path = resolve(output);
  const st = await lstat(path, { bigint: true }).catch(() => undefined);
  if (!st?.isFile()) return false;
  const now: Omit<OutputRecord, 'seenAtMs'> = {
    path,
    dev: String(st.dev),
    ino: String(st.ino),
    size: String(st.size),
    mtimeNs: String(st.mtimeNs),
    ctimeNs: String(st.ctimeNs),
  };
  const record = await readFile(recordPath, 'utf8')
    .then((text) => JSON.parse(text) as OutputRecord)
    .catch(() => undefined);
  if (
    record &&
    record.path === now.path &&
    record.dev === now.dev &&
    record.ino === now.ino &&
    record.size === now.size &&
    record.mtimeNs === now.mtimeNs &&
    record.ctimeNs === now.ctimeNs &&
    record.seenAtMs - Number(st.ctimeNs / 1_000_000n) >= SETTLED_MS
  ) {
    return true;
  }
  if (!(await holdsExactly(path, parts))) return false;
  // Best effort: without a record the next run compares again.
  const temp = tempPath(recordPath);
  await writeFile(temp, JSON.stringify({ ...now, seenAtMs: Date.now() }))
    .then(() => rename(temp, recordPath))
    .catch(() => unlink(temp).catch(() => {}));
  return true;
}
