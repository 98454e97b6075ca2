import { lstat, open, stat } from 'node:fs/promises';

const CHUNK = 4 * 1024 * 1024;

/**
 * True when `path` is a regular file (not a symlink to one) that holds exactly the bytes of `parts`, one after the other.
 * Sizes are compared first, so a different file usually costs one `stat` per part; an equal one
 * is read through (page cache) and compared chunk by chunk. Anything unreadable is "not the same".
 */
export async function holdsExactly(path: string, parts: readonly string[]): Promise<boolean> {
  // lstat: a symlink at `path` is not "the file"; a build replaces the link itself.
  const [target, ...sizes] = await Promise.all([
    lstat(path).catch(() => undefined),
    ...parts.map((p) => stat(p).catch(() => undefined)),
  ]);
  if (!target?.isFile() || sizes.some((s) => s === undefined)) return false;
  if (sizes.reduce((sum, s) => sum + (s?.size ?? 0), 0) !== target.size) return false;
  const out = await open(path).catch(() => undefined);
  if (!out) return false;
  const mine = Buffer.allocUnsafe(CHUNK);
  const theirs = Buffer.allocUnsafe(CHUNK);
  try {
    let position = 0;
    for (const part of parts) {
      const input = await open(part);
      try {
        for (let offset = 0; ; ) {
          const { bytesRead } = await input.read(mine, 0, CHUNK, offset);
          if (bytesRead === 0) break;
          let got = 0;
          while (got < bytesRead) {
            const r = await out.read(theirs, got, bytesRead - got, position + got);
            if (r.bytesRead === 0) return false;
            got += r.bytesRead;
          }
          if (mine.compare(theirs, 0, bytesRead, 0, bytesRead) !== 0) return false;
          offset += bytesRead;
          position += bytesRead;
        }
      } finally {
        await input.close();
      }
    }
    return position === target.size;
  } catch {
    return false;
  } finally {
    await out.close();
  }
}
