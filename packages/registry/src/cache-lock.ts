import { randomBytes } from 'node:crypto';
import { rmSync, unlinkSync } from 'node:fs';
import { link, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { IrbError } from '@irb/errors';
import { orphaned, processToken } from './owner.ts';

// ---------------------------------------------------------------------------------------------
// Leases and the prune lock.
//
// A process using a persistent cache appends each digest it touches to its own lease file,
// `<dir>/.leases/<token>.<random>.lease`, BEFORE it looks at the blob, and then waits while a
// live prune holds `<dir>/.prune.lock`. A prune takes the lock, then reads the leases, and removes
// only blobs no live lease names. Either the prune read the leases after the digest was added
// (it keeps the blob), or it held the lock when the user checked (the user waits for it to end,
// then finds the blob present or downloads it again): a blob in use is never removed under it.

export const LEASES = '.leases';
export const PRUNE_LOCK = '.prune.lock';
export const TMP = '.tmp';

export const liveLeaseFiles = new Set<string>();
export const temporaryDirs = new Set<string>();
let exitHookInstalled = false;

export function installExitHook(): void {
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
export const ownPrunes = new Map<string, Promise<unknown>>();

/** How long a user of the cache waits for another process's prune before it gives up. */
const PRUNE_WAIT_MS = 2 * 60_000;

/** Waits while a live prune holds the lock (a dead holder's lock is broken). */
export async function waitForPrune(dir: string, waitMs = PRUNE_WAIT_MS): Promise<void> {
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
export async function acquirePruneLock(dir: string): Promise<boolean> {
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

export async function releasePruneLock(dir: string): Promise<void> {
  const lock = await lockOwner(dir);
  if (lock?.owner === processToken()) await unlink(join(dir, PRUNE_LOCK)).catch(() => undefined);
}
