import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { child, tempDir } from '../test/helpers.ts';
import { type CacheLayout, cacheLayout, clearCache, holdFile, listCache, pruneCache } from './index.ts';

const DAY = 86_400_000;

async function put(path: string, size: number, ageMs = 0): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, randomBytes(size));
  const when = new Date(Date.now() - ageMs);
  await utimes(path, when, when);
}

/** A blob file of `size` random bytes, last used `ageMs` ago; returns its digest. */
async function blob(layout: CacheLayout, size: number, ageMs = 0): Promise<string> {
  const bytes = randomBytes(size);
  const hex = createHash('sha256').update(bytes).digest('hex');
  await put(join(layout.blobs, 'sha256', hex), 0, ageMs);
  await writeFile(join(layout.blobs, 'sha256', hex), bytes);
  const when = new Date(Date.now() - ageMs);
  await utimes(join(layout.blobs, 'sha256', hex), when, when);
  return `sha256:${hex}`;
}

/** What a cache of an earlier version left for this root: sibling directories, blobs at the top. */
async function oldLayout(root: string): Promise<string[]> {
  const key = 'ab'.repeat(32);
  const files = [
    `${root}-index/sha256-${'cd'.repeat(32)}.0123456789abcdef.idx`,
    `${root}-output/${key}.base`,
    `${root}-output/${key}.tree`,
    join(root, 'sha256', 'ef'.repeat(32)),
    join(root, '.schemes'),
    join(root, 'blobs', '.schemes'),
  ];
  for (const file of files) await put(file, 100);
  return files;
}

describe('listing', () => {
  it('lists entries by last use, then debris, legacy files and the small caches', async () => {
    const layout = cacheLayout(join(await tempDir(), 'cache'));
    const old = await blob(layout, 300, 3 * DAY);
    const fresh = await blob(layout, 200);
    const layer = `sha256:${'12'.repeat(32)}`;
    await put(join(layout.index, `sha256-${layer.slice(7)}.0123456789abcdef.idx`), 50, DAY);
    const key = '34'.repeat(32);
    await put(join(layout.output, `${key}.base`), 70, 2 * DAY);
    // Not entries: a file of another program, a temp file of a live writer.
    await put(join(layout.output, 'README'), 10);
    await mkdir(layout.tmp, { recursive: true });
    const killed = child('temp', layout.tmp, 'blob');
    await killed.next();
    await killed.kill();
    const live = child('temp', layout.tmp, 'blob');
    await live.next();
    await oldLayout(layout.root);
    await put(layout.kvmProbe, 20);
    await put(join(layout.compileCache, 'v24', 'a'), 1000);
    await put(join(layout.compileCache, 'v24', 'b'), 24);

    const entries = await listCache(layout.root);
    expect(entries.map((e) => [e.kind, e.digest, e.size])).toEqual([
      ['blob', fresh, 200],
      ['index', layer, 50],
      ['output', `sha256:${key}`, 70],
      ['blob', old, 300],
      ...entries.slice(4, 11).map((e) => [e.kind, undefined, e.size]),
      ['other', undefined, 20],
      ['other', undefined, 1024],
    ]);
    const leftovers = entries.slice(4, 11);
    expect(leftovers.filter((e) => e.kind === 'debris')).toHaveLength(1);
    expect(
      leftovers
        .filter((e) => e.kind === 'legacy')
        .map((e) => e.path)
        .sort(),
    ).toEqual((await oldLayout(layout.root)).sort());
    expect(entries.every((e) => !e.inUse)).toBe(true);
    expect(await listCache(join(layout.root, 'nothing-here'))).toEqual([]);
    await live.kill();
  });
});

describe('pruning', () => {
  it('removes least recently used entries first until under the size, and entries older than a duration', async () => {
    const layout = cacheLayout(await tempDir());
    const a = await blob(layout, 1000, 4 * DAY);
    const b = await blob(layout, 1000, 3 * DAY);
    const c = await blob(layout, 1000, 2 * DAY);
    const d = await blob(layout, 1000, 0);
    const bySize = await pruneCache(layout.root, { maxBytes: 2500 });
    expect(bySize.removed.map((e) => e.digest)).toEqual([a, b]);
    expect(bySize).toMatchObject({ removedBytes: 2000, kept: 2, keptBytes: 2000, keptInUse: 0 });
    const byAge = await pruneCache(layout.root, { olderThanMs: DAY });
    expect(byAge.removed.map((e) => e.digest)).toEqual([c]);
    expect((await listCache(layout.root)).map((e) => e.digest)).toEqual([d]);
    expect(existsSync(layout.pruneLock)).toBe(false);
  });

  it('always removes debris and the old layout, and nothing that is not irb’s', async () => {
    const layout = cacheLayout(join(await tempDir(), 'cache'));
    const kept = await blob(layout, 100);
    await oldLayout(layout.root);
    // Beside the old entries: a file of the user's in the sibling, a kernel under the root.
    await put(`${layout.root}-index/notes.txt`, 5);
    await put(join(layout.root, 'kernel', 'boot', 'vmlinuz-6.1'), 5);
    await mkdir(layout.tmp, { recursive: true });
    const killed = child('temp', layout.tmp, 'blob');
    await killed.next();
    await killed.kill();
    const result = await pruneCache(layout.root, {});
    expect(result).toMatchObject({ orphansRemoved: 1, legacyRemoved: 6, kept: 1 });
    expect(result.removedBytes).toBe(6 * 100 + result.removed.find((e) => e.kind === 'debris')!.size);
    expect((await listCache(layout.root)).map((e) => e.digest)).toEqual([kept]);
    expect(await readdir(`${layout.root}-index`)).toEqual(['notes.txt']);
    expect(existsSync(`${layout.root}-output`)).toBe(false);
    expect(existsSync(join(layout.root, 'sha256'))).toBe(false);
    expect((await readdir(layout.root)).sort()).toEqual(['blobs', 'kernel', 'tmp']);
  });

  it('keeps what a running process leased or holds; it goes once that process is gone', async () => {
    const layout = cacheLayout(await tempDir());
    const leased = await blob(layout, 500, 10 * DAY);
    const free = await blob(layout, 500);
    const key = '56'.repeat(32);
    await put(join(layout.output, `${key}.base`), 40, 5 * DAY);
    await put(join(layout.output, `${key}.tree`), 10, 5 * DAY);
    await mkdir(layout.tmp, { recursive: true });
    const held = await holdFile(join(layout.output, `${key}.base`), layout.tmp);
    const lease = child('lease', layout.root, leased);
    expect(await lease.next()).toBe('ready');
    const listed = await listCache(layout.root);
    expect(
      listed
        .filter((e) => e.inUse)
        .map((e) => e.path)
        .sort(),
    ).toEqual(
      [
        join(layout.blobs, 'sha256', leased.slice(7)),
        join(layout.output, `${key}.base`),
        join(layout.output, `${key}.tree`),
      ].sort(),
    );
    const result = await pruneCache(layout.root, { maxBytes: 0 });
    expect(result.removed.map((e) => e.digest)).toEqual([free]);
    expect(result.keptInUse).toBe(3);
    lease.process.stdin.write('go\n');
    expect(await lease.next()).toBe('released');
    await lease.exited;
    await (await import('node:fs/promises')).unlink(held as string);
    expect((await pruneCache(layout.root, { maxBytes: 0 })).removed).toHaveLength(3);
    // A killed leaseholder's lease is debris: the next prune removes it and its blob may go.
    const again = await blob(layout, 10);
    const killed = child('lease', layout.root, again);
    expect(await killed.next()).toBe('ready');
    await killed.kill();
    const after = await pruneCache(layout.root, { maxBytes: 0 });
    expect(after.orphansRemoved).toBe(1);
    expect(after.removed.map((e) => e.digest)).toContain(again);
  });

  it('an earlier version still running keeps the blobs it leased in the old place', async () => {
    // The default cache's blobs are where they were: an old irb may be reading one right now.
    const layout = cacheLayout(await tempDir());
    const leased = await blob(layout, 100, DAY);
    const old = child('token');
    const token = await old.next();
    const lease = join(layout.blobs, '.leases', `${token}.aabbccddeeff.lease`);
    await put(lease, 0);
    await writeFile(lease, `${leased}\n`);
    const kept = await pruneCache(layout.root, { maxBytes: 0 });
    expect(kept).toMatchObject({ keptInUse: 1, legacyRemoved: 0 });
    expect(existsSync(lease)).toBe(true);
    await old.kill();
    const gone = await pruneCache(layout.root, { maxBytes: 0 });
    expect(gone.removed.map((e) => e.digest ?? e.path)).toEqual([leased, lease]);
  });

  it('a second prune of the same cache waits, or skips when asked', async () => {
    const layout = cacheLayout(await tempDir());
    await blob(layout, 100);
    const [first, second, third] = await Promise.all([
      pruneCache(layout.root, { maxBytes: 0 }),
      pruneCache(layout.root, { maxBytes: 0 }),
      pruneCache(layout.root, { maxBytes: 0, busy: 'skip' }),
    ]);
    expect(first.removed).toHaveLength(1);
    expect(second).toMatchObject({ removed: [], skipped: false });
    expect(third.skipped).toBe(true);
  });
});

describe('clearing', () => {
  it('removes everything irb cached, keeps what running builds use and anything not irb’s', async () => {
    const layout = cacheLayout(join(await tempDir(), 'cache'));
    await blob(layout, 100);
    const leased = await blob(layout, 100);
    await put(join(layout.index, `sha256-${'12'.repeat(32)}.0123456789abcdef.idx`), 50);
    await put(join(layout.output, `${'34'.repeat(32)}.base`), 70);
    await put(layout.schemes, 10);
    await put(layout.kvmProbe, 10);
    await put(join(layout.compileCache, 'v24', 'x'), 10);
    await put(join(layout.root, 'kernel', 'boot', 'vmlinuz-6.1'), 5);
    await oldLayout(layout.root);
    const lease = child('lease', layout.root, leased);
    expect(await lease.next()).toBe('ready');
    await mkdir(layout.tmp, { recursive: true });
    const writer = child('temp', layout.tmp, 'download');
    const writing = await writer.next();

    const result = await clearCache(layout.root);
    expect(result.keptInUse).toBe(1);
    expect(result.legacyRemoved).toBe(6);
    const left = await listCache(layout.root);
    expect(left.map((e) => [e.kind, e.digest])).toEqual([['blob', leased]]);
    expect(existsSync(layout.compileCache)).toBe(false);
    expect(await readFile(writing, 'utf8')).toMatch(/killed/);
    expect(existsSync(join(layout.root, 'kernel', 'boot', 'vmlinuz-6.1'))).toBe(true);
    expect(existsSync(`${layout.root}-output`)).toBe(false);

    lease.process.stdin.write('go\n');
    await lease.exited;
    await writer.kill();
    await clearCache(layout.root);
    expect(await listCache(layout.root)).toEqual([]);
    expect(await clearCache(join(layout.root, 'never-made'))).toMatchObject({ removed: [], kept: 0 });
  });
});
