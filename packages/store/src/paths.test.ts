import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/helpers.ts';
import { cacheAreas, cacheLayout, compileCacheDirectory, defaultCacheRoot } from './paths.ts';

describe('the cache root and its layout', () => {
  it('picks the root from IRB_CACHE_DIR, XDG_CACHE_HOME (absolute only), then ~/.cache/irb', () => {
    expect(defaultCacheRoot({ IRB_CACHE_DIR: '/c', XDG_CACHE_HOME: '/x' })).toBe('/c');
    expect(defaultCacheRoot({ IRB_CACHE_DIR: '/c/' })).toBe('/c');
    expect(defaultCacheRoot({ IRB_CACHE_DIR: 'rel' })).toBe(join(process.cwd(), 'rel'));
    expect(defaultCacheRoot({ XDG_CACHE_HOME: '/x' })).toBe('/x/irb');
    expect(defaultCacheRoot({ XDG_CACHE_HOME: 'relative' })).toMatch(/\/\.cache\/irb$/);
    expect(defaultCacheRoot({ IRB_CACHE_DIR: '' })).toMatch(/\/irb$/);
  });

  it('puts every area inside the root: nothing beside it', () => {
    const layout = cacheLayout('/var/cache/irb');
    expect(layout).toEqual({
      root: '/var/cache/irb',
      blobs: '/var/cache/irb/blobs',
      index: '/var/cache/irb/index',
      output: '/var/cache/irb/output',
      spool: '/var/cache/irb/spool',
      tmp: '/var/cache/irb/tmp',
      leases: '/var/cache/irb/leases',
      pruneLock: '/var/cache/irb/prune.lock',
      schemes: '/var/cache/irb/schemes',
      compileCache: '/var/cache/irb/compile-cache',
      kvmProbe: '/var/cache/irb/kvm-probe.json',
    });
    const areas = cacheAreas('/var/cache/irb');
    expect(areas.map((a) => a.name)).toEqual(Object.keys(layout).filter((k) => k !== 'root'));
    for (const area of areas) {
      expect(area.path.startsWith('/var/cache/irb/')).toBe(true);
      expect(area.holds).toMatch(/^\S/);
    }
    // The default layout of earlier versions had blobs, index and output at these same places.
    expect(cacheLayout(defaultCacheRoot({ XDG_CACHE_HOME: '/x' })).blobs).toBe('/x/irb/blobs');
  });

  it('creates the compile-cache directory privately, and says when it cannot', async () => {
    const root = join(await tempDir(), 'new-root');
    const dir = await compileCacheDirectory(root);
    expect(dir).toBe(join(root, 'compile-cache'));
    expect((await stat(root)).mode & 0o777).toBe(0o700);
    expect((await stat(dir as string)).isDirectory()).toBe(true);
  });

  // Node's own recursive mkdir never returns there (issue: HOME=/proc/1/x spun forever).
  it.runIf(existsSync('/proc/self'))('gives no compile-cache directory under /proc, at once', async () => {
    expect(
      await compileCacheDirectory(`/proc/self/irb-nope-${randomBytes(4).toString('hex')}`),
    ).toBeUndefined();
  });
});
