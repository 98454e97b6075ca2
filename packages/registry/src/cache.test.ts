import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheLayout, listCache, pruneCache } from '@irb/store';
import { type LineChild, lineChild } from '@irb/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { BlobCache } from './index.ts';

const CHILD = fileURLToPath(new URL('../test/cache-child.ts', import.meta.url));
const dirs: string[] = [];
const children: LineChild[] = [];
afterAll(async () => {
  for (const c of children) await c.kill();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'irb-cache-unit-'));
  dirs.push(dir);
  return dir;
}

function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Stores `size` random bytes and dates the blob's last use `ageMs` ago. */
async function put(cache: BlobCache, size: number, ageMs = 0): Promise<string> {
  const bytes = randomBytes(size);
  const digest = digestOf(bytes);
  await cache.writeBytes(digest, bytes);
  const when = new Date(Date.now() - ageMs);
  await utimes(cache.path(digest), when, when);
  return digest;
}

/** A child process running test/cache-child.ts, killed after the file's tests. */
function child(...args: string[]): LineChild {
  const c = lineChild(CHILD, ...args);
  children.push(c);
  return c;
}

describe('directories that cannot be created', () => {
  // /proc/self/… belongs to this test process: nothing is created, and no one else's directory is touched.
  it.runIf(existsSync('/proc/self'))(
    'a cache in /proc fails at once instead of looping (Node recursive mkdir never returns there)',
    async () => {
      const target = `/proc/self/irb-nope-${randomBytes(4).toString('hex')}/cache`;
      const cache = new BlobCache(target, { maxBytes: false });
      const bytes = randomBytes(10);
      await expect(cache.writeBytes(digestOf(bytes), bytes)).rejects.toMatchObject({
        code: 'IRB_CACHE_WRITE_FAILED',
        message: expect.stringContaining(
          '(ENOENT); set `cacheDir` (or IRB_CACHE_DIR) to a writable directory, or pass `cache: false`',
        ),
      });
      expect(await cache.has(digestOf(bytes))).toBe(false);
      await cache.dispose();
    },
  );
});

describe('listing', () => {
  it('lists blobs and index entries with digest, size and last use, most recent first', async () => {
    const root = await tempDir();
    const dir = root;
    const cache = new BlobCache(dir, { maxBytes: false });
    const old = await put(cache, 300, 3 * 86_400_000);
    const fresh = await put(cache, 200);
    const index = join(root, 'index');
    await mkdir(index);
    const layer = digestOf(randomBytes(8));
    await writeFile(join(index, `sha256-${layer.slice(7)}.0123456789abcdef.idx`), randomBytes(50));
    await utimes(
      join(index, `sha256-${layer.slice(7)}.0123456789abcdef.idx`),
      new Date(0),
      new Date(86_400_000),
    );
    await cache.dispose();
    const entries = await listCache(dir);
    expect(entries.map((e) => [e.kind, e.digest, e.size])).toEqual([
      ['blob', fresh, 200],
      ['blob', old, 300],
      ['index', layer, 50],
    ]);
    expect(entries[2]?.lastUsed.toISOString()).toBe('1970-01-02T00:00:00.000Z');
    expect(entries.every((e) => !e.inUse)).toBe(true);
    expect(await listCache(join(root, 'nothing-here'))).toEqual([]);
  });

  it('reading a blob marks it used now', async () => {
    const dir = await tempDir();
    const writer = new BlobCache(dir, { maxBytes: false });
    const digest = await put(writer, 100, 5 * 86_400_000);
    await writer.dispose();
    const reader = new BlobCache(dir, { maxBytes: false });
    expect(await reader.readBytes(digest)).toBeDefined();
    const [entry] = await listCache(dir);
    expect(Date.now() - (entry?.lastUsed.getTime() ?? 0)).toBeLessThan(60_000);
    expect(entry?.inUse).toBe(true);
    await reader.dispose();
    expect((await listCache(dir))[0]?.inUse).toBe(false);
  });
});

describe('pruning', () => {
  it('removes least recently used entries first until under the size, and entries older than a duration', async () => {
    const dir = await tempDir();
    const cache = new BlobCache(dir, { maxBytes: false });
    const a = await put(cache, 1000, 4 * 86_400_000);
    const b = await put(cache, 1000, 3 * 86_400_000);
    const c = await put(cache, 1000, 2 * 86_400_000);
    const d = await put(cache, 1000, 0);
    await cache.dispose();

    const bySize = await pruneCache(dir, { maxBytes: 2500 });
    expect(bySize.removed.map((e) => e.digest)).toEqual([a, b]);
    expect(bySize).toMatchObject({ removedBytes: 2000, kept: 2, keptBytes: 2000, keptInUse: 0 });
    const byAge = await pruneCache(dir, { olderThanMs: 86_400_000 });
    expect(byAge.removed.map((e) => e.digest)).toEqual([c]);
    expect((await listCache(dir)).map((e) => e.digest)).toEqual([d]);
    expect(await readdir(dir)).not.toContain('prune.lock');
  });

  it('a blob another process holds is kept; it stays readable there', async () => {
    const dir = await tempDir();
    const cache = new BlobCache(dir, { maxBytes: false });
    const held = await put(cache, 5000, 10 * 86_400_000);
    const free = await put(cache, 5000, 0);
    await cache.dispose();
    const c = child('lease', dir, held);
    expect(await c.next()).toBe('ready');
    const result = await pruneCache(dir, { maxBytes: 0 });
    expect(result.removed.map((e) => e.digest)).toEqual([free]);
    expect(result.keptInUse).toBe(1);
    c.process.stdin.write('go\n');
    expect(await c.next()).toBe('ok 5000');
    expect(await c.exited).toBe(0);
    // The lease ended with the process: now it goes.
    expect((await pruneCache(dir, { maxBytes: 0 })).removed.map((e) => e.digest)).toEqual([held]);
  });

  it('prunes racing a reader in another process never take a blob from under it', async () => {
    const dir = await tempDir();
    const cache = new BlobCache(dir, { maxBytes: false });
    const blobs = Array.from({ length: 150 }, (_, i) => randomBytes(2000 + i));
    const digests = blobs.map(digestOf);
    for (const [i, bytes] of blobs.entries()) await cache.writeBytes(digests[i] as string, bytes);
    const reader = child('reader', dir, '8', ...digests);
    let line: string | undefined;
    reader.next().then(
      (l) => {
        line = l;
      },
      () => {},
    );
    // Put back what the last prune took, prune to nothing, again and again, while the reader leases and reads.
    let prunes = 0;
    let removed = 0;
    while (line === undefined && reader.process.exitCode === null) {
      for (const [i, bytes] of blobs.entries()) {
        if (!(await cache.has(digests[i] as string))) await cache.writeBytes(digests[i] as string, bytes);
      }
      await cache.dispose();
      removed += (await pruneCache(dir, { maxBytes: 0 })).removed.length;
      prunes++;
    }
    await reader.exited;
    expect(line, reader.stderr()).toMatch(/^done \d+$/);
    expect(prunes).toBeGreaterThan(1);
    expect(removed).toBeGreaterThan(0);
  });

  it('blobs another process is writing survive a prune running beside it', async () => {
    const dir = await tempDir();
    const writer = child('writer', dir, '30');
    const stored: string[] = [];
    let prunes = 0;
    while (stored.length < 30) {
      const pruning = pruneCache(dir, { maxBytes: 0 });
      const line = await writer.next();
      expect(line, writer.stderr()).toMatch(/^stored sha256:/);
      stored.push(line.slice(7));
      await pruning;
      prunes++;
    }
    await pruneCache(dir, { maxBytes: 0 });
    const listed = await listCache(dir);
    expect(listed.map((e) => e.digest).sort()).toEqual([...stored].sort());
    expect(listed.every((e) => e.inUse)).toBe(true);
    expect(prunes).toBe(30);
    writer.process.stdin.write('done\n');
    expect(await writer.exited).toBe(0);
    expect(await listCache(dir)).toHaveLength(30);
    expect((await pruneCache(dir, { maxBytes: 0 })).removed).toHaveLength(30);
  });

  it('a cache that stored a blob trims itself to its limit when disposed, keeping what it used', async () => {
    const dir = await tempDir();
    const filler = new BlobCache(dir, { maxBytes: false });
    const old = [await put(filler, 4000, 3000_000), await put(filler, 4000, 2000_000)];
    await filler.dispose();
    const reader = new BlobCache(dir, { maxBytes: 6000 });
    await reader.readBytes(old[0] as string);
    await reader.dispose();
    // Only reads: no scan, no trim.
    expect(await listCache(dir)).toHaveLength(2);
    const build = new BlobCache(dir, { maxBytes: 6000 });
    const mine = await put(build, 4000, 0);
    await build.dispose();
    expect((await listCache(dir)).map((e) => e.digest)).toEqual([mine]);
  });

  it('a second prune of the same cache waits, or skips when asked', async () => {
    const dir = await tempDir();
    const cache = new BlobCache(dir, { maxBytes: false });
    await put(cache, 100, 0);
    await cache.dispose();
    const [first, second, third] = await Promise.all([
      pruneCache(dir, { maxBytes: 0 }),
      pruneCache(dir, { maxBytes: 0 }),
      pruneCache(dir, { maxBytes: 0, busy: 'skip' }),
    ]);
    expect(first.removed).toHaveLength(1);
    expect(second).toMatchObject({ removed: [], skipped: false });
    expect(third.skipped).toBe(true);
  });
});

describe('the prune lock', () => {
  it("users wait for a live pruner, give up clearly when it holds on, and break a dead one's lock", async () => {
    const dir = await tempDir();
    const writer = new BlobCache(dir, { maxBytes: false });
    const digest = await put(writer, 100, 0);
    await writer.dispose();
    const holder = child('token', dir);
    const token = await holder.next();
    await writeFile(cacheLayout(dir).pruneLock, `${token}\n`);
    const patient = new BlobCache(dir, { maxBytes: false, pruneWaitMs: 300 });
    await expect(patient.has(digest)).rejects.toMatchObject({
      code: 'IRB_CACHE_BUSY',
      message: expect.stringContaining(
        `process ${holder.process.pid} has held the prune lock of the cache at ${dir}`,
      ),
    });
    expect((await pruneCache(dir, { busy: 'skip' })).skipped).toBe(true);
    holder.process.kill('SIGKILL');
    await holder.exited;
    // The holder is gone: its lock is broken and the blob is there.
    expect(await patient.has(digest)).toBe(true);
    expect(await readdir(dir)).not.toContain('prune.lock');
    await patient.dispose();
  });
});

describe('leftovers of killed processes', () => {
  it('a partial download whose writer was SIGKILLed is removed by the next run; a live one is not', async () => {
    const dir = await tempDir();
    const digest = digestOf(randomBytes(16));
    const killed = child('partial', dir, digest);
    const killedPath = await killed.next();
    const alive = child('partial', dir, digest);
    const alivePath = await alive.next();
    killed.process.kill('SIGKILL');
    await killed.exited;
    expect(existsSync(killedPath)).toBe(true);
    const layout = cacheLayout(dir);
    // The killed writer's lease file is left too.
    expect((await readdir(layout.leases)).length).toBe(2);

    const next = new BlobCache(dir, { maxBytes: false });
    const staged = await next.stage(digest);
    expect(existsSync(killedPath)).toBe(false);
    expect(existsSync(alivePath)).toBe(true);
    expect(staged.path).not.toBe(alivePath);
    await next.dispose();
    // The partial went with the sweep; the prune removes the killed writer's lease.
    const pruned = await pruneCache(dir, {});
    expect(pruned.orphansRemoved).toBe(1);
    expect((await readdir(layout.leases)).filter((n) => n.includes(`.irb-${killed.process.pid}-`))).toEqual(
      [],
    );

    alive.process.kill('SIGKILL');
    await alive.exited;
    // Its partial download and its lease.
    expect((await pruneCache(dir, {})).orphansRemoved).toBe(2);
    expect(await readdir(layout.tmp)).toEqual([]);
  });
});
