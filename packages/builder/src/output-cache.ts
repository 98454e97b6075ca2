import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  type CacheLayout,
  cacheMaxBytes,
  createDigester,
  discardCorruptEntry,
  fileDigest,
  holdFile,
  pruneCache,
  replaceFile,
  tempPath,
} from '@irb/store';
import { type BaseSnapshotHeader, type BaseTree, decodeBaseHeader, decodeBaseSnapshot } from './base-tree.ts';
import { fileIdentity, recordHolds, type SeenFile } from './file-identity.ts';
import type { MemberSink, MemberStats } from './pipeline.ts';
import { holdsExactly } from './same-bytes.ts';
import type { BuildSummary } from './types.ts';

/*
 * The output cache: built members by key, in the cache's `output` area (see @irb/store).
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
 * Each file is written to a temp file in the cache's `tmp` area and renamed, the description
 * (`.tree`, `.meta`) before the bytes; a build uses a key only when both are there. Builds of one
 * key may race: they write the same bytes, and the last rename wins. `irb cache ls/prune` list
 * them as kind `output`, the automatic size limit counts them, and a prune removes the temp
 * files of killed writers.
 *
 * Integrity: a description starts with a line `irb-member <member digest> <body digest>`. The
 * body's digest is checked whenever the description is read (a few milliseconds at most), the
 * member's digest whenever the member's bytes are used ({@link CachedBase.verify}): while they
 * are copied into an output, where the copy reads them anyway. An output found up to date by
 * its `.out` record uses no member byte and verifies nothing. A member that fails is removed,
 * and the error (`isCacheCorruption`) makes the build start again without it.
 */

/** A usable cached base member. */
export interface CachedBase {
  /** A private hard link to `<key>.base`: a prune that removes the entry meanwhile cannot take it away. */
  path: string;
  header: BaseSnapshotHeader;
  /** The stored tree, decoded on first use; `undefined` when it is malformed (treat as a miss). */
  tree(): BaseTree | undefined;
  /**
   * Checks the member's bytes against the digest recorded when it was stored (once; the same
   * promise after). A mismatch removes the entry and rejects with a cache corruption error.
   */
  verify(): Promise<void>;
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
  /** As {@link CachedBase.verify}. */
  verify(): Promise<void>;
  release(): Promise<void>;
}

const HEADER = 'irb-member';

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A description as stored: the line naming the member's and the body's digests, then the body. */
function envelope(memberDigest: string, body: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`${HEADER} ${memberDigest} ${sha256(body)}\n`);
  const bytes = new Uint8Array(head.byteLength + body.byteLength);
  bytes.set(head);
  bytes.set(body, head.byteLength);
  return bytes;
}

/** The member digest and the body of a stored description; `undefined` when it fails its check. */
function openEnvelope(bytes: Uint8Array): { memberDigest: string; body: Uint8Array } | undefined {
  const newline = bytes.indexOf(10);
  if (newline < 0 || newline > 256) return undefined;
  const [header, memberDigest, bodyDigest] = new TextDecoder().decode(bytes.subarray(0, newline)).split(' ');
  if (header !== HEADER || !memberDigest || !bodyDigest) return undefined;
  const body = bytes.subarray(newline + 1);
  return sha256(body) === bodyDigest ? { memberDigest, body } : undefined;
}

/** Reads and checks the description at `path`; `undefined` when missing or corrupt (a miss). */
async function readDescription(
  path: string,
): Promise<{ memberDigest: string; body: Uint8Array } | undefined> {
  try {
    return openEnvelope(new Uint8Array(await readFile(path)));
  } catch {
    return undefined;
  }
}

/**
 * Takes a private hard link to the bytes of an entry whose description is `description`, and
 * marks both used now (last use is the mtime, as for blobs: a hit keeps the entry from the
 * least-recently-used end). `undefined` when the bytes are gone or not `size` long (a damaged
 * entry is a miss).
 */
async function holdEntry(
  layout: CacheLayout,
  bytesPath: string,
  description: string,
  size: number,
): Promise<string | undefined> {
  const path = await holdFile(bytesPath, layout.tmp);
  if (path === undefined) return undefined;
  if ((await stat(path).catch(() => undefined))?.size !== size) {
    await unlink(path).catch(() => {});
    return undefined;
  }
  const now = new Date();
  await Promise.all([utimes(bytesPath, now, now), utimes(description, now, now)]).catch(() => {});
  return path;
}

/**
 * Checks the held bytes at `held` against `digest`, once; on a mismatch removes the entry's
 * files (so the next lookup misses) and rejects with a cache corruption error.
 */
function verifier(
  held: string,
  digest: string,
  files: readonly [string, string],
  what: string,
): () => Promise<void> {
  let checked: Promise<void> | undefined;
  return () => {
    checked ??= (async () => {
      const actual = await fileDigest(held);
      if (actual?.digest === digest) return;
      throw await discardCorruptEntry(
        files[0],
        'IRB_DIGEST_MISMATCH',
        `the output cache's ${what} ${files[0]} does not match the digest recorded when it was stored; it was removed, run again to build it afresh`,
        { also: [files[1]] },
      );
    })();
    return checked;
  };
}

/** The cached base member of `key`, or `undefined` (missing, half there, or unreadable: all misses). */
export async function lookupBase(layout: CacheLayout, key: string): Promise<CachedBase | undefined> {
  const treePath = join(layout.output, `${key}.tree`);
  const description = await readDescription(treePath);
  if (!description) return undefined;
  const bytes = description.body;
  const header = decodeBaseHeader(bytes);
  if (!header) return undefined;
  const basePath = join(layout.output, `${key}.base`);
  const path = await holdEntry(layout, basePath, treePath, header.stats.compressedBytes);
  if (path === undefined) return undefined;
  let tree: BaseTree | undefined;
  return {
    path,
    header,
    tree: () => {
      tree ??= decodeBaseSnapshot(bytes)?.tree;
      return tree;
    },
    verify: verifier(path, description.memberDigest, [basePath, treePath], 'base member'),
    release: () => unlink(path).catch(() => {}),
  };
}

/** The cached overlay member of `key`, or `undefined` (all failures are misses). */
export async function lookupOverlay(layout: CacheLayout, key: string): Promise<CachedOverlay | undefined> {
  const metaPath = join(layout.output, `${key}.meta`);
  const description = await readDescription(metaPath);
  if (!description) return undefined;
  let meta: OverlayMeta & { v?: number };
  try {
    meta = JSON.parse(new TextDecoder().decode(description.body));
  } catch {
    return undefined;
  }
  if (meta.v !== 1 || typeof meta.stats !== 'object' || !Array.isArray(meta.warnings)) return undefined;
  const { v: _v, ...rest } = meta;
  const overlayPath = join(layout.output, `${key}.overlay`);
  const path = await holdEntry(layout, overlayPath, metaPath, rest.stats.compressedBytes);
  if (path === undefined) return undefined;
  return {
    path,
    meta: rest,
    verify: verifier(path, description.memberDigest, [overlayPath, metaPath], 'overlay member'),
    release: () => unlink(path).catch(() => {}),
  };
}

/**
 * A sink that stores a member as it streams into the output: its bytes under `<key>.<bytesExt>`
 * and, once it ended, the description `describe` returns under `<key>.<descriptionExt>`
 * (`undefined`: store nothing). Best effort: a write that fails (disk full, …) drops the entry
 * and never fails the build. `abort()` removes the temp file when the build did not finish.
 */
function createEntrySink(
  layout: CacheLayout,
  key: string,
  exts: { bytes: string; description: string },
  describe: (stats: MemberStats) => Promise<Uint8Array | undefined>,
): MemberSink & { abort(): Promise<void> } {
  const final = join(layout.output, `${key}.${exts.bytes}`);
  const temp = tempPath(layout.tmp, `${key}.${exts.bytes}`);
  // The bytes are hashed as they pass, for the description: what a later use checks them against.
  const digester = createDigester();
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let failed = false;
  let done = false;
  const drop = async () => {
    failed = true;
    await handle?.close().catch(() => {});
    handle = undefined;
    await unlink(temp).catch(() => {});
  };
  const openTemp = () => open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  return {
    async write(chunk) {
      if (failed) return;
      try {
        handle ??= await openTemp();
        digester.update(chunk);
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
        await replaceFile(
          join(layout.output, `${key}.${exts.description}`),
          envelope(digester.digest(), description),
          { tempDir: layout.tmp },
        );
        await rename(temp, final);
        done = true;
      } catch {
        await drop();
        return;
      }
      // The output cache counts toward the automatic limit, like blobs and layer indexes.
      const maxBytes = cacheMaxBytes();
      if (maxBytes !== undefined) await pruneCache(layout.root, { maxBytes, busy: 'skip' }).catch(() => {});
    },
    async abort() {
      if (!done && !failed) await drop();
    },
  };
}

/** A sink that stores the base member of `key` and its tree snapshot (`snapshot`). */
export function createBaseSink(
  layout: CacheLayout,
  key: string,
  snapshot: (stats: MemberStats) => Promise<Uint8Array>,
): MemberSink & { abort(): Promise<void> } {
  return createEntrySink(layout, key, { bytes: 'base', description: 'tree' }, snapshot);
}

/**
 * A sink that stores the overlay member of `key` with what the summary says of it. `stillValid`
 * is asked at the end: the key holds digests of host files, and a file that changed while the
 * member was packed must not be cached under the old digest.
 */
export function createOverlaySink(
  layout: CacheLayout,
  key: string,
  meta: Omit<OverlayMeta, 'stats'>,
  stillValid: () => Promise<boolean>,
): MemberSink & { abort(): Promise<void> } {
  return createEntrySink(layout, key, { bytes: 'overlay', description: 'meta' }, async (stats) =>
    (await stillValid()) ? new TextEncoder().encode(JSON.stringify({ v: 1, ...meta, stats })) : undefined,
  );
}

/** What {@link outputUpToDate} saw of an output it found holding a key's bytes. */
interface OutputRecord extends SeenFile {
  path: string;
}

/**
 * True when `output` already holds exactly the bytes of `parts` (the cached members of overlay
 * key `key` and the trailer member). Trusts the record `<key>.out` (written
 * by an earlier call that compared the bytes) when the file's identity and times are unchanged
 * since — ctime moves on any write, chmod or rename and cannot be set back — and otherwise
 * compares byte for byte ({@link holdsExactly}), recording what it saw when they are equal. The
 * file is never written, nor its times touched.
 */
export async function outputUpToDate(
  layout: CacheLayout,
  key: string,
  output: string,
  parts: ReadonlyArray<string | Uint8Array>,
): Promise<boolean> {
  const recordPath = join(layout.output, `${key}.out`);
  const path = resolve(output);
  const st = await lstat(path, { bigint: true }).catch(() => undefined);
  if (!st?.isFile()) return false;
  const record = await readFile(recordPath, 'utf8')
    .then((text) => JSON.parse(text) as OutputRecord)
    .catch(() => undefined);
  if (record?.path === path && recordHolds(record, st)) return true;
  if (!(await holdsExactly(path, parts))) return false;
  // Best effort: without a record the next run compares again.
  await replaceFile(
    recordPath,
    new TextEncoder().encode(JSON.stringify({ path, ...fileIdentity(st), seenAtMs: Date.now() })),
    { tempDir: layout.tmp },
  ).catch(() => {});
  return true;
}
