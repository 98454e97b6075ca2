import { rmSync, unlinkSync } from 'node:fs';
import { appendFile, link, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { IrbError } from '@irb/errors';
import { ensureDirectory } from './ensure.ts';
import { orphaned, processToken } from './owner.ts';
import { cacheLayout } from './paths.ts';
import { tempPath } from './temp.ts';

// ---------------------------------------------------------------------------------------------
// Leases and the prune lock.
//
// A process using a persistent cache appends each blob digest it touches to its own lease file
// (`leases/`, named as a temp file of that process) BEFORE it looks at the blob, and then waits
// while a live prune holds `prune.lock`. A prune takes the lock, then reads the leases, and
// removes only blobs no live lease names. Either the prune read the leases after the digest was
// added (it keeps the blob), or it held the lock when the user checked (the user waits for it to
// end, then finds the blob present or downloads it again): a blob in use is never removed under it.
// Output entries are not leased: a build holds them by a hard link in `tmp/` (see holdFile).

/** Lease files of this process, removed at exit when their owner did not release them. */
const liveLeaseFiles = new Set<string>();
/** Per-process temporary cache roots (no persistent cache), removed at exit. */
const temporaryRoots = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const dir of temporaryRoots) rmSync(dir, { recursive: true, force: true });
    for (const file of liveLeaseFiles) {
      try {
        unlinkSync(file);
      } catch {}
    }
  });
}

/** Marks `root` as this process's throwaway cache: removed at exit if {@link forgetTemporaryRoot} was not called. */
export function registerTemporaryRoot(root: string): void {
  temporaryRoots.add(root);
  installExitHook();
}

/** `root` was removed by its owner: the exit hook need not. */
export function forgetTemporaryRoot(root: string): void {
  temporaryRoots.delete(root);
}

/**
 * The blobs one user of a cache holds: a file in `leases/` listing their digests, created on the
 * first {@link add} and removed by {@link release} (or at exit). A prune keeps what a live lease
 * names; the lease of a killed process is removed by the next prune.
 */
export class Leases {
  readonly #root: string;
  #file: Promise<string> | undefined;

  /** Leases in the cache at `root`. */
  constructor(root: string) {
    this.#root = root;
    installExitHook();
  }

  /**
   * Adds `name` to this process's lease. `false` when it cannot be written: a cache this
   * process cannot write is one no other user can prune either, so reading may go on.
   */
  async add(name: string): Promise<boolean> {
    try {
      this.#file ??= this.#create();
      await appendFile(await this.#file, `${name}\n`);
      return true;
    } catch {
      return false;
    }
  }

  /** Ends the lease: what it named may be pruned again. */
  async release(): Promise<void> {
    const file = await this.#file?.catch(() => undefined);
    this.#file = undefined;
    if (!file) return;
    liveLeaseFiles.delete(file);
    await unlink(file).catch(() => undefined);
  }

  async #create(): Promise<string> {
    const dir = cacheLayout(this.#root).leases;
    await ensureDirectory(dir, 'the cache', this.#root);
    const file = tempPath(dir, 'lease');
    // Created empty at once: a prune that runs before the first digest is appended sees the owner.
    await writeFile(file, '', { flag: 'wx', mode: 0o600 });
    liveLeaseFiles.add(file);
    return file;
  }
}

async function lockOwner(path: string): Promise<{ owner: string; mtimeMs: number } | undefined> {
  try {
    const [owner, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { owner: owner.trim(), mtimeMs: info.mtimeMs };
  } catch {
    return undefined;
  }
}

/** Removes a lock whose owner is gone, without removing a live lock taken meanwhile. */
async function breakStaleLock(path: string): Promise<void> {
  const aside = tempPath(dirname(path), 'prune.lock.stale');
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

/** Prunes running in this process, by cache root. */
export const ownPrunes = new Map<string, Promise<unknown>>();

/** How long a user of the cache waits for another process's prune before it gives up. */
const PRUNE_WAIT_MS = 2 * 60_000;

/** Waits while a live prune holds the lock of the cache at `root` (a dead holder's lock is broken). */
export async function waitForPrune(root: string, waitMs = PRUNE_WAIT_MS): Promise<void> {
  const layout = cacheLayout(root);
  const started = Date.now();
  for (;;) {
    const lock = await lockOwner(layout.pruneLock);
    if (!lock) return;
    if (lock.owner === processToken()) {
      // Our own lock: wait for the prune of this process that holds it, not for a pid.
      await ownPrunes.get(layout.root)?.catch(() => undefined);
      return;
    }
    if (orphaned(lock.owner, lock.mtimeMs)) {
      await breakStaleLock(layout.pruneLock);
      continue;
    }
    // A prune takes seconds; one holding the lock for minutes is stopped or stuck: say which.
    if (Date.now() - started > waitMs) {
      throw new IrbError(
        'IRB_CACHE_BUSY',
        `process ${lock.owner.split('-')[0]} has held the prune lock of the cache at ${layout.root} for over ${Math.round(waitMs / 1000)} s; wait for it to finish or stop it, or set \`cacheDir\` to another directory`,
      );
    }
    await sleep(20);
  }
}

/** Takes the prune lock of the cache at `root`; `false` when another live process holds it. */
export async function acquirePruneLock(root: string): Promise<boolean> {
  const path = cacheLayout(root).pruneLock;
  const temp = tempPath(dirname(path), 'prune.lock');
  await writeFile(temp, `${processToken()}\n`, { mode: 0o600 });
  try {
    for (let round = 0; round < 3; round++) {
      try {
        // link() fails with EEXIST when the lock exists, and a lock is whole when visible.
        await link(temp, path);
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const lock = await lockOwner(path);
      if (lock && !orphaned(lock.owner, lock.mtimeMs)) return false;
      await breakStaleLock(path);
    }
    return false;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/** Releases the prune lock of the cache at `root` if this process holds it. */
export async function releasePruneLock(root: string): Promise<void> {
  const path = cacheLayout(root).pruneLock;
  const lock = await lockOwner(path);
  if (lock?.owner === processToken()) await unlink(path).catch(() => undefined);
}
