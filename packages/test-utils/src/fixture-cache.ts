import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Build-once cache for fixture images. Each fixture lives in `<root>/<key>/`, which appears
 * only complete (built in `<key>.tmp-*` beside it, then renamed). A lock file keeps two
 * processes (parallel test files, a test run and the benchmark) from building the same
 * fixture twice on a 2-core machine; the rename keeps the result correct even if they do.
 */

/** Where fixtures are cached: `$IRB_FIXTURE_DIR`, else `$XDG_CACHE_HOME/irb/fixtures`, else `~/.cache/irb/fixtures`. */
export function fixtureCacheRoot(): string {
  const explicit = process.env.IRB_FIXTURE_DIR;
  if (explicit) return explicit;
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'irb', 'fixtures');
}

/** Progress lines go to stderr: fixtures can take a minute and CI logs should say why. */
export function logFixture(message: string): void {
  process.stderr.write(`[irb fixture ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function tryLock(lockPath: string): Promise<boolean> {
  try {
    const handle = await open(lockPath, 'wx');
    await handle.writeFile(String(process.pid));
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return false;
  }
}

async function lockOwner(lockPath: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(lockPath, 'utf8'), 10);
    return Number.isFinite(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Options of {@link buildOnce}. */
export interface BuildOnceOptions {
  /** How long to wait for another process that holds the lock. Default 30 minutes. */
  waitMs?: number;
  /** Cache root. Default {@link fixtureCacheRoot}. */
  cacheDir?: string;
  signal?: AbortSignal;
}

/**
 * Returns `<root>/<key>`, calling `build(tmpDir)` first when it is not cached. `build` fills
 * `tmpDir`; on success it is renamed into place, on failure it is removed.
 */
export async function buildOnce(
  key: string,
  build: (tmpDir: string) => Promise<void>,
  options: BuildOnceOptions = {},
): Promise<string> {
  const root = options.cacheDir ?? fixtureCacheRoot();
  const finalDir = join(root, key);
  if (await exists(finalDir)) return finalDir;
  await mkdir(root, { recursive: true });
  const lockPath = join(root, `${key}.lock`);
  const deadline = Date.now() + (options.waitMs ?? 30 * 60_000);
  let announced = false;
  for (;;) {
    options.signal?.throwIfAborted();
    if (await tryLock(lockPath)) break;
    const owner = await lockOwner(lockPath);
    if (owner !== undefined && !pidAlive(owner)) {
      // A crashed builder: move its lock aside atomically so only one waiter takes over.
      await rename(lockPath, `${lockPath}.stale-${process.pid}`).catch(() => {});
      await unlink(`${lockPath}.stale-${process.pid}`).catch(() => {});
      continue;
    }
    if (await exists(finalDir)) return finalDir;
    if (Date.now() > deadline) {
      throw new Error(
        `fixture ${key}: still locked by pid ${owner} after waiting; remove ${lockPath} if stale`,
      );
    }
    if (!announced) logFixture(`${key}: waiting for pid ${owner ?? '?'} that is building it`);
    announced = true;
    await sleep(1000);
  }
  try {
    if (await exists(finalDir)) return finalDir;
    for (const name of await readdir(root)) {
      if (name.startsWith(`${key}.tmp-`)) await rm(join(root, name), { recursive: true, force: true });
    }
    const tmpDir = await mkdtemp(join(root, `${key}.tmp-`));
    const started = Date.now();
    try {
      await build(tmpDir);
      await rename(tmpDir, finalDir);
    } catch (error) {
      await rm(tmpDir, { recursive: true, force: true });
      if (await exists(finalDir)) return finalDir;
      throw error;
    }
    logFixture(`${key}: ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${finalDir}`);
    return finalDir;
  } finally {
    if ((await lockOwner(lockPath)) === process.pid) await unlink(lockPath).catch(() => {});
  }
}

/** Options of {@link runLogged}. */
export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

/**
 * Runs a command to completion, keeping the tail of its output for the error message
 * (debootstrap and apt are chatty; the last lines say what failed).
 */
export async function runLogged(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<void> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    // debootstrap and chroot live in sbin, which non-login shells often leave out of PATH.
    env: options.env ?? {
      ...process.env,
      PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/local/sbin:/usr/sbin:/sbin`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    signal: options.signal,
  });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${code}:\n${tail.trimEnd()}`);
  }
}
