import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { buildTar } from '@irb/test-utils';
import { extract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexTar, normalizeMemberName, type TarMember } from '../src/sources/tar-index.ts';
import { run } from '../src/sources/test-helpers.ts';

/** tar-stream's type names in @irb/cpio's vocabulary (what TarMember.type uses). */
const CPIO_TYPE = {
  file: 'file',
  'contiguous-file': 'file',
  link: 'link',
  symlink: 'symlink',
  'character-device': 'char',
  'block-device': 'block',
  directory: 'directory',
  fifo: 'fifo',
} as const;

/** tar-stream's view of the same archive: the oracle the seeking indexer must agree with. */
async function oracle(file: string): Promise<Map<string, Omit<TarMember, 'linkname'>>> {
  const out = new Map<string, Omit<TarMember, 'linkname'>>();
  const parser = extract();
  const collect = (async () => {
    for await (const entry of parser) {
      const name = normalizeMemberName(entry.header.name);
      out.set(name, {
        name,
        type: CPIO_TYPE[(entry.header.type ?? 'file') as keyof typeof CPIO_TYPE],
        offset: entry.offset + 512,
        size: entry.header.size ?? 0,
      });
      entry.resume();
    }
  })();
  await Promise.all([pipeline(createReadStream(file), parser), collect]);
  return out;
}

let root: string;
let src: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'irb-tar-index-'));
  src = join(root, 'src');
  const deep = join(src, 'd'.repeat(60), 'e'.repeat(60), 'f'.repeat(60));
  await mkdir(deep, { recursive: true });
  await writeFile(join(deep, `${'n'.repeat(120)}.txt`), 'long name\n');
  // Fits ustar's 155-byte prefix + 100-byte name split.
  await mkdir(join(src, 'p'.repeat(70), 'q'.repeat(70)), { recursive: true });
  await writeFile(join(src, 'p'.repeat(70), 'q'.repeat(70), `${'r'.repeat(90)}.txt`), 'prefix name\n');
  await writeFile(join(src, 'big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 7));
  await writeFile(join(src, 'empty'), '');
  await symlink(`${'x'.repeat(150)}/target`, join(src, 'long-link'));
  await symlink('big.bin', join(src, 'short-link'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('indexTar', () => {
  for (const format of ['gnu', 'pax', 'ustar', 'oldgnu']) {
    it(`agrees with tar-stream on a GNU tar --format=${format} archive`, async () => {
      const file = join(root, `${format}.tar`);
      // ustar cannot store the 150-character link target nor the 124-character file name.
      const exclude = format === 'ustar' ? ['--exclude=long-link', '--exclude=dddd*'] : [];
      await run('tar', [`--format=${format}`, ...exclude, '-cf', file, '-C', src, '.']);
      const index = await indexTar(file);
      const expected = await oracle(file);
      expect(index.members.size).toBe(expected.size);
      for (const [name, want] of expected) {
        const { linkname: _linkname, ...have } = index.members.get(name) ?? { name: '<missing>' };
        expect(have).toEqual(want);
      }
      const big = index.resolve('short-link')!;
      expect(big.name).toBe('big.bin');
      expect(Buffer.from(await index.read(big)).equals(await readFile(join(src, 'big.bin')))).toBe(true);
      const prefixed = `${'p'.repeat(70)}/${'q'.repeat(70)}/${'r'.repeat(90)}.txt`;
      expect(Buffer.from(await index.read(index.members.get(prefixed)!)).toString()).toBe('prefix name\n');
      if (format !== 'ustar') {
        const longName = [...index.members.keys()].find((n) => n.endsWith(`${'n'.repeat(120)}.txt`))!;
        expect(longName.length).toBeGreaterThan(250);
        expect(Buffer.from(await index.read(index.members.get(longName)!)).toString()).toBe('long name\n');
        expect(index.members.get('long-link')?.linkname).toBe(`${'x'.repeat(150)}/target`);
      }
    });
  }

  it('reads PAX size records and archives without end blocks', async () => {
    const tar = await buildTar(
      [
        { type: 'file', path: `${'p'.repeat(200)}/file`, content: 'pax path' },
        { type: 'file', path: 'after', content: 'x'.repeat(1000) },
      ],
      { end: false },
    );
    const file = join(root, 'pax-noend.tar');
    await writeFile(file, tar);
    const index = await indexTar(file);
    expect(Buffer.from(await index.read(index.members.get(`${'p'.repeat(200)}/file`)!)).toString()).toBe(
      'pax path',
    );
    expect(Buffer.from(await index.read(index.members.get('after')!)).toString()).toBe('x'.repeat(1000));
  });

  it('passes over a GNU sparse member with extension blocks (its map is header, not data)', async () => {
    // Nine data regions: four pairs fit the header, the other five need an extension block.
    const chunks = Array.from({ length: 9 }, (_, i) => ({
      offset: i * 4096,
      data: new Uint8Array(512).fill(i + 1),
    }));
    const tar = await buildTar([
      { type: 'sparse', path: 'holes', size: 9 * 4096, chunks },
      { type: 'file', path: 'manifest.json', content: '[]' },
    ]);
    const file = join(root, 'sparse.tar');
    await writeFile(file, tar);
    const index = await indexTar(file);
    expect([...index.members.keys()]).toEqual(['manifest.json']);
    expect(Buffer.from(await index.read(index.members.get('manifest.json')!)).toString()).toBe('[]');
  });

  it('refuses truncated archives and headers with bad checksums', async () => {
    const tar = await buildTar([{ type: 'file', path: 'f', content: 'y'.repeat(5000) }]);
    const truncated = join(root, 'truncated.tar');
    await writeFile(truncated, tar.subarray(0, 2048));
    await expect(indexTar(truncated)).rejects.toMatchObject({ code: 'IRB_SOURCE_INVALID' });
    const corrupt = Buffer.from(tar);
    corrupt[0] = 0x41; // the name changes, the stored checksum does not
    const bad = join(root, 'bad-checksum.tar');
    await writeFile(bad, corrupt);
    const error = await indexTar(bad).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_SOURCE_INVALID' });
    expect((error as Error).message).toContain('checksum');
  });

  it('keeps UTF-8 names exact (0x80–0x9F bytes included) and leaves out names that are not UTF-8', async () => {
    // 日本 is e6 97 a5 e6 9c ac; two different non-UTF-8 names must not collapse into one key.
    const tar = await buildTar([
      { type: 'file', path: 'blobs/日本.json', content: '{}' },
      { type: 'file', path: Uint8Array.of(0x61, 0x80), content: 'one' },
      { type: 'file', path: Uint8Array.of(0x61, 0x81), content: 'two' },
      { type: 'symlink', path: 'alias', target: 'blobs/日本.json' },
      { type: 'char', path: 'dev/null', major: 1, minor: 3 },
    ]);
    const file = join(root, 'names.tar');
    await writeFile(file, tar);
    const index = await indexTar(file);
    expect([...index.members.keys()].sort()).toEqual(['alias', 'blobs/日本.json', 'dev/null']);
    expect(index.members.get('dev/null')?.type).toBe('char');
    expect(Buffer.from(await index.read(index.resolve('alias')!)).toString()).toBe('{}');
  });
});
