import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, open, readFile, rename, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheMaxBytes, processToken, pruneCache } from '@irb/registry';
import { type BaseSnapshotHeader, type BaseTree, decodeBaseSnapshot } from './base-tree.ts';
import type { MemberSink, MemberStats } from './pipeline.ts';

/*
 * The output cache: built base members by base key (base-key.ts), beside the blob cache
 * (`~/.cache/irb/output`, or `<cacheDir>-output`). Per key two files:
 *   <key>.base  the compressed base member, byte for byte as it went into the output;
 *   <key>.tree  what overlay planning needs from the base (names, kinds, link targets, modes,
 *               /etc/passwd and /etc/group) and the summary's facts (base-tree.ts).
 * Each is written to `<name>.<owner>.<random>.tmp` and renamed, `.tree` before `.base`; a build
 * uses a key only when both are there. Builds of one key may race: they write the same bytes,
 * and the last rename wins. `irb cache ls/prune` list them as kind `output`, the automatic size
 * limit counts them, and a prune removes the temp files of killed writers.
 */

/** A usable cached base member. */
export interface CachedBase {
  /** A private hard link to `<key>.base`: a prune that removes the entry meanwhile cannot take it away. */
  path: string;
  header: BaseSnapshotHeader;
  tree: BaseTree;
  /** Removes the private link. */
  release(): Promise<void>;
}

function tempPath(path: string): string {
  return `${path}.${processToken()}.${randomBytes(6).toString('hex')}.tmp`;
}

/** The cached base member of `key`, or `undefined` (missing, half there, or unreadable: all misses). */
export async function lookupBase(dir: string, key: string): Promise<CachedBase | undefined> {
  const base = join(dir, `${key}.base`);
  const treePath = join(dir, `${key}.tree`);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(treePath);
  } catch {
    return undefined;
  }
  const decoded = decodeBaseSnapshot(bytes);
  if (!decoded) return undefined;
  const path = tempPath(base);
  try {
    await link(base, path);
  } catch {
    return undefined;
  }
  // Last use is the mtime, as for blobs: a hit keeps the entry from the least-recently-used end.
  const now = new Date();
  await Promise.all([utimes(base, now, now), utimes(treePath, now, now)]).catch(() => {});
  return { path, ...decoded, release: () => unlink(path).catch(() => {}) };
}

/**
 * A sink that stores the base member as it streams into the output. Best effort: a write that
 * fails (disk full, …) drops the entry and never fails the build. `abort()` removes the temp
 * file when the build did not finish.
 */
export function createBaseSink(
  dir: string,
  key: string,
  snapshot: (stats: MemberStats) => Promise<Uint8Array>,
  blobsDir: string,
): MemberSink & { abort(): Promise<void> } {
  const base = join(dir, `${key}.base`);
  const temp = tempPath(base);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let failed = false;
  let done = false;
  const drop = async () => {
    failed = true;
    await handle?.close().catch(() => {});
    handle = undefined;
    await unlink(temp).catch(() => {});
  };
  return {
    async write(chunk) {
      if (failed) return;
      try {
        handle ??= await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
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
        handle ??= await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
        await handle.close();
        handle = undefined;
        const treePath = join(dir, `${key}.tree`);
        const treeTemp = tempPath(treePath);
        await writeNew(treeTemp, await snapshot(stats));
        await rename(treeTemp, treePath).catch(async (error) => {
          await unlink(treeTemp).catch(() => {});
          throw error;
        });
        await rename(temp, base);
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

async function writeNew(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    await handle.writeFile(bytes);
  } finally {
    await handle.close();
  }
}
