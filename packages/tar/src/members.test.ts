import { describe, expect, it } from 'vitest';
import {
  ascii,
  base,
  concat,
  GNU,
  header,
  memoryInput,
  paxRecord,
  sizeField,
  USTAR,
  withData,
} from '../test/blocks.ts';
import { TarFormatError } from './errors.ts';
import { BLOCK_SIZE } from './header.ts';
import { MAX_EXTENSION_SIZE, type TarMemberHeader, TarMembers } from './members.ts';

const END = new Uint8Array(2 * BLOCK_SIZE);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function file(name: string, content: string, extra: Parameters<typeof header>[0] = {}): Uint8Array {
  const data = ascii(content);
  return withData(
    header({ name, ...base, size: sizeField(data.byteLength), typeflag: '0', ...USTAR, ...extra }),
    data,
  );
}

function record(typeflag: string, data: Uint8Array, format = USTAR): Uint8Array {
  return withData(
    header({ name: '././@LongLink', ...base, size: sizeField(data.byteLength), typeflag, ...format }),
    data,
  );
}

async function all(tar: Uint8Array, chunk?: number): Promise<TarMemberHeader[]> {
  const members = new TarMembers(memoryInput(tar, chunk));
  const out: TarMemberHeader[] = [];
  for (let m = await members.next(); m; m = await members.next()) out.push({ ...m, name: m.name.slice() });
  return out;
}

async function failure(tar: Uint8Array): Promise<TarFormatError> {
  const error = await all(tar).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TarFormatError);
  return error as TarFormatError;
}

describe('TarMembers', () => {
  it('folds GNU long names and links and PAX records into the next member, PAX winning', async () => {
    const long = `${'d'.repeat(120)}/name`;
    const tar = concat(
      record('g', paxRecord('comment', 'git archive')),
      record('L', ascii(`${long}\0`), GNU),
      record('K', ascii(`${'t'.repeat(130)}\0`), GNU),
      withData(
        header({ name: 'short', ...base, size: sizeField(0), typeflag: '2', linkname: 'x', ...GNU }),
        new Uint8Array(),
      ),
      record('L', ascii('gnu-name\0'), GNU),
      record('x', concat(paxRecord('path', 'pax-name'), paxRecord('mtime', '1.5'))),
      record('x', paxRecord('size', '3')),
      file('ustar-name', 'abc'),
      record('V', ascii('volume')),
      file('last', 'z'),
      END,
    );
    const [link, renamed, last] = await all(tar);
    expect(text(link!.name)).toBe(long);
    expect(text(link!.linkname)).toBe('t'.repeat(130));
    expect(link!.type).toBe('symlink');
    expect(link!.offset).toBe(0);
    expect(link!.headerOffset).toBe(6 * BLOCK_SIZE);
    expect(text(renamed!.name)).toBe('pax-name');
    expect(renamed!.pax.map((r) => r.key)).toEqual(['path', 'mtime', 'size']);
    expect([renamed!.size, renamed!.stored, renamed!.header.size]).toEqual([3, 3, 3]);
    expect(renamed!.dataOffset - renamed!.headerOffset).toBe(BLOCK_SIZE);
    expect(text(last!.name)).toBe('last');
    expect(last!.pax).toEqual([]);
  });

  it('skips what the caller left of a member, and lets it read the data in between', async () => {
    const tar = concat(file('a', 'x'.repeat(1000)), file('b', 'second'), END);
    const input = memoryInput(tar, 64);
    const members = new TarMembers(input);
    const a = await members.next();
    expect(text(await input.read(10))).toBe('x'.repeat(10));
    const b = await members.next();
    expect(text(b!.name)).toBe('b');
    expect(text(await input.read(b!.stored))).toBe('second');
    expect(await members.next()).toBeUndefined();
    expect(a!.stored).toBe(1000);
  });

  it('gives header-only types no data whatever the size says, other typeflags their size (as Go)', async () => {
    const tar = concat(
      header({ name: 'sym', ...base, size: sizeField(5000), typeflag: '2', linkname: 't', ...USTAR }),
      file('old-dir/', '0123456789'),
      file('after', 'ok'),
    );
    const [sym, dir, after] = await all(tar);
    expect([sym!.stored, sym!.size]).toEqual([0, 5000]);
    expect([dir!.type, dir!.stored]).toEqual(['directory', 10]);
    expect(text(after!.name)).toBe('after');
  });

  it('ends at the zero block or where a tar stops at a member boundary', async () => {
    expect(await all(concat(file('a', 'x'), END, ascii('trailing garbage')))).toHaveLength(1);
    expect(await all(file('a', 'x'))).toHaveLength(1);
    expect(await all(new Uint8Array())).toEqual([]);
  });

  it('refuses a NUL inside a PAX path or linkpath, at the offset of its record', async () => {
    for (const key of ['path', 'linkpath']) {
      const tar = concat(
        file('first', 'x'),
        record('x', paxRecord(key, 'etc/passwd\0.bak')),
        file('f', ''),
        END,
      );
      const error = await failure(tar);
      expect(error.problem).toBe(`PAX ${key} contains a NUL byte, which no name can hold`);
      expect(error.offset).toBe(2 * BLOCK_SIZE);
      expect(error.truncated).toBe(false);
    }
  });

  it('names what is wrong and where', async () => {
    const orphan = await failure(concat(record('x', paxRecord('path', 'p')), END));
    expect([orphan.problem, orphan.offset]).toEqual(['extended header without a member', 2 * BLOCK_SIZE]);
    const bad = file('a', 'x');
    bad[0] = 0x41;
    expect((await failure(bad)).problem).toBe('bad header checksum');
    const huge = header({
      name: 'x',
      ...base,
      size: sizeField(MAX_EXTENSION_SIZE + 1),
      typeflag: 'x',
      ...USTAR,
    });
    expect((await failure(huge)).problem).toMatch(/absurdly large/);
    const notNumber = concat(record('x', paxRecord('size', 'lots')), file('a', ''));
    expect((await failure(notNumber)).offset).toBe(0);
  });

  it('reports a tar that stops inside a member as truncated', async () => {
    const member = file('a', 'x'.repeat(1000));
    for (const cut of [100, BLOCK_SIZE + 10, BLOCK_SIZE + 1000]) {
      const error = await failure(member.subarray(0, cut));
      expect(error.truncated).toBe(true);
    }
    expect((await failure(record('L', ascii('name\0'), GNU))).truncated).toBe(true);
  });
});
