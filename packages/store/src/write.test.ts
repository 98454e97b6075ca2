import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/helpers.ts';
import { createDigester, fileDigest, holdFile, replaceFile } from './index.ts';

describe('atomic writes and holds', () => {
  it('replaces a file whole through a temp file elsewhere on the file system, private by default', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'tmp'));
    const target = join(dir, 'entry');
    await writeFile(target, 'old');
    await replaceFile(target, new TextEncoder().encode('new bytes'), { tempDir: join(dir, 'tmp') });
    expect(await readFile(target, 'utf8')).toBe('new bytes');
    await replaceFile(join(dir, 'fresh'), new Uint8Array([1, 2]));
    expect((await stat(join(dir, 'fresh'))).mode & 0o777).toBe(0o600);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    // A failed write leaves neither a temp file nor a changed target.
    await expect(
      replaceFile(join(dir, 'missing', 'x'), new Uint8Array(1), { tempDir: join(dir, 'tmp') }),
    ).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('a held file keeps its bytes when the entry is removed', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'tmp'));
    await writeFile(join(dir, 'member'), 'member bytes');
    const held = await holdFile(join(dir, 'member'), join(dir, 'tmp'));
    expect(held).toBeDefined();
    await unlink(join(dir, 'member'));
    expect(await readFile(held as string, 'utf8')).toBe('member bytes');
    expect(await holdFile(join(dir, 'member'), join(dir, 'tmp'))).toBeUndefined();
  });

  it('digests a file as a stream of the same bytes would', async () => {
    const dir = await tempDir();
    const bytes = new Uint8Array(9 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
    await writeFile(join(dir, 'f'), bytes);
    const expected = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    expect(await fileDigest(join(dir, 'f'))).toEqual({ digest: expected, size: bytes.byteLength });
    const digester = createDigester();
    digester.update(bytes.subarray(0, 5));
    digester.update(bytes.subarray(5));
    expect(digester.digest()).toBe(expected);
    expect(await fileDigest(join(dir, 'none'))).toBeUndefined();
  });
});
