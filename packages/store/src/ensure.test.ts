import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/helpers.ts';
import { ensureCacheAreas, ensureDirectory } from './index.ts';

describe('directories that cannot be created', () => {
  it('a path below a regular file fails at once naming the option', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'file'), 'x');
    const target = join(dir, 'file', 'cache', 'deeper');
    await expect(ensureDirectory(target)).rejects.toMatchObject({
      code: 'IRB_CACHE_WRITE_FAILED',
      message: expect.stringMatching(
        /^cannot create the blob cache at .*file\/cache\/deeper: a part of the path is a file, not a directory \(ENOTDIR\); set `cacheDir` \(or IRB_CACHE_DIR\) to a writable directory, or pass `cache: false`$/,
      ),
    });
    await expect(ensureCacheAreas(join(dir, 'file', 'root'))).rejects.toMatchObject({
      code: 'IRB_CACHE_WRITE_FAILED',
      message: expect.stringContaining(`cannot create the blob cache at ${join(dir, 'file', 'root')}: `),
    });
  });

  // /proc/self/… belongs to this test process: nothing is created, and no one else's directory is touched.
  it.runIf(existsSync('/proc/self'))(
    'a path in /proc fails at once instead of looping (Node recursive mkdir never returns there)',
    async () => {
      const target = `/proc/self/irb-nope-${randomBytes(4).toString('hex')}/cache`;
      await expect(ensureCacheAreas(target)).rejects.toMatchObject({
        code: 'IRB_CACHE_WRITE_FAILED',
        message: expect.stringContaining(
          '(ENOENT); set `cacheDir` (or IRB_CACHE_DIR) to a writable directory, or pass `cache: false`',
        ),
      });
    },
  );

  it('makes the root private and every area a build writes into', async () => {
    const root = join(await tempDir(), 'a', 'root');
    const layout = await ensureCacheAreas(root);
    expect(layout.root).toBe(root);
    expect((await readdir(root)).sort()).toEqual(['blobs', 'index', 'output', 'spool', 'tmp']);
    expect((await stat(root)).mode & 0o777).toBe(0o700);
    // Again: nothing to do, nothing fails.
    await ensureCacheAreas(root);
  });
});
