import { describe, expect, it } from 'vitest';
import { cpioChecksum } from './checksum.ts';
import { parseCpioHeader } from './newc.ts';
import { concatStream, pseudoRandomBytes, readBack } from './test-helpers.ts';
import type { CpioEntry } from './types.ts';
import { type PackCpioOptions, type PackCpioSummary, packCpio } from './writer.ts';

const enc = new TextEncoder();

function pack(entries: Iterable<CpioEntry> | AsyncIterable<CpioEntry>, options?: PackCpioOptions) {
  return concatStream(packCpio(entries, options));
}

async function* chunked(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < data.length; o += size) yield data.slice(o, o + size);
}

const big = pseudoRandomBytes(300_000, 7);

function allKinds(): CpioEntry[] {
  return [
    { type: 'directory', path: '.', mode: 0o755, mtime: 1_700_000_000 },
    { type: 'directory', path: 'tmp', mode: 0o1777, uid: 0, gid: 0, mtime: 1 },
    { type: 'file', path: 'tmp/empty', mode: 0o600, size: 0 },
    { type: 'file', path: 'bin/su', mode: 0o4755, uid: 0, gid: 0, size: 5, body: enc.encode('su!!\n') },
    { type: 'file', path: 'usr/wall', mode: 0o2755, uid: 0, gid: 5, size: 3, body: enc.encode('abc') },
    {
      type: 'file',
      path: 'big.bin',
      mode: 0o644,
      uid: 0xffff_ffff,
      gid: 0xffff_fffe,
      mtime: 0xffff_ffff,
      size: big.length,
      body: () => chunked(big, 65_537),
    },
    { type: 'file', path: 'streamed', mode: 0o640, size: 10, body: chunked(enc.encode('0123456789'), 3) },
    { type: 'symlink', path: 'lib', mode: 0o777, target: 'usr/lib' },
    { type: 'symlink', path: 'abs', mode: 0o777, target: '/etc/../etc/passwd' },
    { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
    { type: 'block', path: 'dev/big', mode: 0o660, gid: 6, rdevMajor: 0xfff, rdevMinor: 0xfffff },
    { type: 'fifo', path: 'run/fifo', mode: 0o644 },
    { type: 'socket', path: 'run/sock', mode: 0o755 },
    { type: 'file', path: 'a', mode: 0o644, size: 4, body: enc.encode('link'), links: ['b', 'c/d'] },
    {
      type: 'file',
      path: new Uint8Array([0x6e, 0xff, 0xfe, 0x2e]),
      mode: 0o644,
      size: 1,
      body: enc.encode('x'),
    },
    { type: 'file', path: 'ünï/ÇØdé', mode: 0o644, size: 2, body: enc.encode('hi') },
  ];
}

describe('packCpio round trip', () => {
  it('writes every kind and field and reads it back', async () => {
    let summary: PackCpioSummary | undefined;
    const archive = await pack(allKinds(), { onEnd: (s) => (summary = s) });
    expect(archive.length % 4).toBe(0);
    const got = await readBack(archive);
    expect(got.map((e) => e.name)).toEqual([
      '.',
      'tmp',
      'tmp/empty',
      'bin/su',
      'usr/wall',
      'big.bin',
      'streamed',
      'lib',
      'abs',
      'dev/console',
      'dev/big',
      'run/fifo',
      'run/sock',
      'a',
      'b',
      'c/d',
      'n\ufffd\ufffd.',
      'ünï/ÇØdé',
    ]);
    const by = new Map(got.map((e) => [e.name, e]));
    const e = (n: string) => by.get(n)!;
    for (const x of got) {
      expect(x.format).toBe('newc');
      expect(x.magic).toBe('070701');
      expect(x.member).toBe(0);
      expect([x.devMajor, x.devMinor, x.check]).toEqual([0, 0, 0]);
      expect(x.nameSize).toBe(x.nameBytes.length + 1);
    }
    expect(e('.')).toMatchObject({
      type: 'directory',
      mode: 0o40755,
      nlink: 2,
      mtime: 1_700_000_000,
      ino: 1,
    });
    expect(e('tmp')).toMatchObject({ mode: 0o41777, permissions: 0o1777, mtime: 1 });
    expect(e('tmp/empty')).toMatchObject({ type: 'file', mode: 0o100600, fileSize: 0, nlink: 1 });
    expect(e('bin/su')).toMatchObject({ mode: 0o104755, permissions: 0o4755, uid: 0, gid: 0 });
    expect(new TextDecoder().decode(e('bin/su').data)).toBe('su!!\n');
    expect(e('usr/wall')).toMatchObject({ mode: 0o102755, gid: 5 });
    expect(e('big.bin')).toMatchObject({
      uid: 0xffff_ffff,
      gid: 0xffff_fffe,
      mtime: 0xffff_ffff,
      fileSize: 300_000,
    });
    expect(e('big.bin').data).toEqual(big);
    expect(new TextDecoder().decode(e('streamed').data)).toBe('0123456789');
    expect(e('lib')).toMatchObject({ type: 'symlink', mode: 0o120777, target: 'usr/lib', fileSize: 7 });
    expect(e('abs').target).toBe('/etc/../etc/passwd');
    expect(e('dev/console')).toMatchObject({ type: 'char', mode: 0o20600, rdevMajor: 5, rdevMinor: 1 });
    expect(e('dev/big')).toMatchObject({
      type: 'block',
      mode: 0o60660,
      rdevMajor: 0xfff,
      rdevMinor: 0xfffff,
    });
    expect(e('run/fifo')).toMatchObject({ type: 'fifo', mode: 0o10644 });
    expect(e('run/sock')).toMatchObject({ type: 'socket', mode: 0o140755 });
    // Hard links: one inode, nlink = 3, data only on the last name.
    const [a, b, cd] = [e('a'), e('b'), e('c/d')];
    expect(new Set([a.ino, b.ino, cd.ino]).size).toBe(1);
    expect([a.nlink, b.nlink, cd.nlink]).toEqual([3, 3, 3]);
    expect([a.fileSize, b.fileSize, cd.fileSize]).toEqual([0, 0, 4]);
    expect(new TextDecoder().decode(cd.data)).toBe('link');
    expect(got.find((x) => x.nameBytes[0] === 0x6e)!.nameBytes).toEqual(
      new Uint8Array([0x6e, 0xff, 0xfe, 0x2e]),
    );
    // Inodes: sequential from 1 in entry order, one per inode.
    const inos = [...new Set(got.map((x) => x.ino))];
    expect(inos).toEqual(Array.from({ length: inos.length }, (_, i) => i + 1));
    expect(summary).toEqual({ entries: 16, records: 18, bytes: archive.length, nextInode: 17 });
  });

  it('ends with a GNU-style TRAILER!!! record', async () => {
    const archive = await pack([]);
    expect(archive.length).toBe(124);
    const h = parseCpioHeader(archive);
    expect(h).toMatchObject({ ino: 0, mode: 0, nlink: 1, nameSize: 11, fileSize: 0 });
    expect(new TextDecoder().decode(archive.subarray(110, 120))).toBe('TRAILER!!!');
    expect(await pack([], { trailer: false })).toEqual(new Uint8Array(0));
  });

  it('aligns names and bodies of every length to 4 bytes', async () => {
    const entries: CpioEntry[] = [];
    for (let n = 1; n <= 9; n++) {
      entries.push({
        type: 'file',
        path: 'x'.repeat(n),
        mode: 0o644,
        size: n,
        body: pseudoRandomBytes(n, n),
      });
    }
    const got = await readBack(await pack(entries));
    for (const [i, g] of got.entries()) {
      expect(g.offset % 4).toBe(0);
      expect(g.data).toEqual(pseudoRandomBytes(i + 1, i + 1));
    }
  });

  it('honours firstInode', async () => {
    const got = await readBack(
      await pack(
        [
          { type: 'directory', path: 'd', mode: 0o755 },
          { type: 'file', path: 'd/f', mode: 0o644, size: 0, links: ['d/g'] },
          { type: 'fifo', path: 'p', mode: 0o600 },
        ],
        { firstInode: 1000 },
      ),
    );
    expect(got.map((g) => g.ino)).toEqual([1000, 1001, 1001, 1002]);
  });

  it('writes the archive device number on every entry but the trailer', async () => {
    const bytes = await pack(
      [
        { type: 'directory', path: 'd', mode: 0o755 },
        { type: 'file', path: 'd/f', mode: 0o644, size: 0, links: ['d/g'] },
      ],
      { device: { major: 1, minor: 0xffff_ffff } },
    );
    const got = await readBack(bytes);
    expect(got.map((g) => [g.devMajor, g.devMinor])).toEqual([
      [1, 0xffff_ffff],
      [1, 0xffff_ffff],
      [1, 0xffff_ffff],
    ]);
    const trailer = parseCpioHeader(bytes, bytes.length - 124);
    expect([trailer.devMajor, trailer.devMinor]).toEqual([0, 0]);
    // Without the trailer, the records alone.
    const bare = await pack([{ type: 'fifo', path: 'p', mode: 0o600 }], {
      trailer: false,
      device: { major: 0, minor: 2 },
    });
    expect(new TextDecoder().decode(bare)).not.toContain('TRAILER!!!');
    for (const device of [
      { major: -1, minor: 0 },
      { major: 0, minor: 2 ** 32 },
      { major: 0.5, minor: 0 },
    ]) {
      await expect(pack([], { device })).rejects.toMatchObject({ code: 'IRB_OPTION_INVALID' });
    }
  });

  it('writes 070702 with the GNU checksum rules', async () => {
    const body = pseudoRandomBytes(100_003, 3);
    const sum = body.reduce((s, b) => s + b, 0) >>> 0;
    const entries = (): CpioEntry[] => [
      { type: 'file', path: 'bytes', mode: 0o644, size: body.length, body },
      { type: 'file', path: 'thunk', mode: 0o644, size: body.length, body: () => chunked(body, 4099) },
      { type: 'file', path: 'iter', mode: 0o644, size: body.length, body: chunked(body, 1000) },
      { type: 'file', path: 'given', mode: 0o644, size: body.length, body: chunked(body, 7), checksum: sum },
      { type: 'file', path: 'h1', mode: 0o644, size: 3, body: new Uint8Array([1, 2, 3]), links: ['h2'] },
      { type: 'symlink', path: 's', mode: 0o777, target: 'bytes' },
    ];
    const got = await readBack(await pack(entries(), { format: 'crc' }));
    expect(got.map((g) => [g.name, g.magic, g.check])).toEqual([
      ['bytes', '070702', sum],
      ['thunk', '070702', sum],
      ['iter', '070702', sum],
      ['given', '070702', sum],
      ['h1', '070702', 0],
      ['h2', '070702', 6],
      ['s', '070702', 0],
    ]);
    expect(cpioChecksum(body)).toBe(sum);
    // `checksum` only matters in crc mode.
    await expect(
      pack([
        {
          type: 'file',
          path: 'given',
          mode: 0o644,
          size: 3,
          body: chunked(new Uint8Array(3).fill(1), 1),
          checksum: 4,
        },
      ]),
    ).resolves.toBeInstanceOf(Uint8Array);
    const err = await pack(
      [
        {
          type: 'file',
          path: 'given',
          mode: 0o644,
          size: 3,
          body: chunked(new Uint8Array(3).fill(1), 1),
          checksum: 4,
        },
      ],
      { format: 'crc' },
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IRB_CPIO_CHECKSUM_MISMATCH' });
  });

  it('is deterministic: same entries, same bytes', async () => {
    const a = await pack(allKinds());
    const b = await pack(allKinds());
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    const c = await pack(allKinds(), { format: 'crc' });
    const d = await pack(allKinds(), { format: 'crc' });
    expect(Buffer.from(c).equals(Buffer.from(d))).toBe(true);
  });

  it('accepts sync and async entry sources and mode with matching type bits', async () => {
    async function* gen(): AsyncGenerator<CpioEntry> {
      yield { type: 'directory', path: 'd', mode: 0o40755 };
      yield { type: 'file', path: 'd/f', mode: 0o100644, size: 0 };
    }
    const fromAsync = await pack(gen());
    const fromSync = await pack([
      { type: 'directory', path: 'd', mode: 0o755 },
      { type: 'file', path: 'd/f', mode: 0o644, size: 0 },
    ]);
    expect(fromAsync).toEqual(fromSync);
  });

  it('coalesces small records into large chunks and passes large bodies through', async () => {
    const large = pseudoRandomBytes(1 << 20, 9);
    const entries: CpioEntry[] = [];
    for (let i = 0; i < 2000; i++) {
      entries.push({
        type: 'file',
        path: `f${i}`,
        mode: 0o644,
        size: 10,
        body: pseudoRandomBytes(10, i + 1),
      });
    }
    entries.push({ type: 'file', path: 'large', mode: 0o644, size: large.length, body: large });
    const chunks: Uint8Array[] = [];
    for await (const c of packCpio(entries)) chunks.push(c);
    // 2000 records of 124 bytes fit in a handful of 64 KiB chunks, and the large body is the caller's array.
    expect(chunks.length).toBeLessThan(10);
    expect(chunks.some((c) => c === large)).toBe(true);
    const got = await readBack(await concatStream(chunks));
    expect(got.at(-1)!.data).toEqual(large);
    expect(got[1999]!.data).toEqual(pseudoRandomBytes(10, 2000));
  });

  it('pulls bodies lazily with backpressure', async () => {
    const log: string[] = [];
    async function* body(name: string): AsyncGenerator<Uint8Array> {
      log.push(`open ${name}`);
      for (let i = 0; i < 4; i++) {
        log.push(`${name} ${i}`);
        yield new Uint8Array(32 * 1024);
      }
    }
    const it = packCpio([
      { type: 'file', path: 'a', mode: 0o644, size: 128 * 1024, body: () => body('a') },
      { type: 'file', path: 'b', mode: 0o644, size: 128 * 1024, body: () => body('b') },
    ])[Symbol.asyncIterator]();
    await it.next(); // header of a
    await it.next(); // first chunk of a
    expect(log).toEqual(['open a', 'a 0']);
    await it.return(undefined);
    expect(log).toEqual(['open a', 'a 0']);
  });
});

describe('packCpio validation', () => {
  const file = (path: CpioEntry['path'], extra: Partial<CpioEntry> = {}): CpioEntry =>
    ({ type: 'file', path, mode: 0o644, size: 0, ...extra }) as CpioEntry;
  const cases: [string, CpioEntry, string][] = [
    ['leading slash', file('/etc/passwd'), 'IRB_CPIO_PATH_INVALID'],
    ['.. component', file('a/../b'), 'IRB_CPIO_PATH_INVALID'],
    ['.. alone', file('..'), 'IRB_CPIO_PATH_INVALID'],
    ['empty component', file('a//b'), 'IRB_CPIO_PATH_INVALID'],
    ['trailing slash', file('a/'), 'IRB_CPIO_PATH_INVALID'],
    ['empty path', file(''), 'IRB_CPIO_PATH_INVALID'],
    ['NUL in name', file('a\0b'), 'IRB_CPIO_PATH_INVALID'],
    ['NUL in byte name', file(new Uint8Array([0x61, 0, 0x62])), 'IRB_CPIO_PATH_INVALID'],
    ['lone surrogate', file('a\ud800'), 'IRB_CPIO_PATH_INVALID'],
    ['trailer name', file('TRAILER!!!'), 'IRB_CPIO_PATH_INVALID'],
    ['name of 4096 bytes', file('x/'.repeat(2048)), 'IRB_CPIO_PATH_TOO_LONG'],
    ['component of 256 bytes', file(`a/${'x'.repeat(256)}`), 'IRB_CPIO_PATH_TOO_LONG'],
    ['bad hard link name', file('a', { links: ['../b'] } as Partial<CpioEntry>), 'IRB_CPIO_PATH_INVALID'],
    [
      'target of 4096 bytes',
      { type: 'symlink', path: 's', mode: 0o777, target: 't'.repeat(4096) },
      'IRB_CPIO_PATH_TOO_LONG',
    ],
    ['empty target', { type: 'symlink', path: 's', mode: 0o777, target: '' }, 'IRB_CPIO_PATH_INVALID'],
    ['NUL in target', { type: 'symlink', path: 's', mode: 0o777, target: 'a\0' }, 'IRB_CPIO_PATH_INVALID'],
    [
      'size of 4 GiB',
      file('f', { size: 2 ** 32, body: () => chunked(new Uint8Array(1), 1) }),
      'IRB_CPIO_FILE_TOO_LARGE',
    ],
    ['negative size', file('f', { size: -1 }), 'IRB_CPIO_FIELD_INVALID'],
    ['fractional size', file('f', { size: 1.5 }), 'IRB_CPIO_FIELD_INVALID'],
    ['uid 2^32', file('f', { uid: 2 ** 32 }), 'IRB_CPIO_FIELD_INVALID'],
    ['negative gid', file('f', { gid: -1 }), 'IRB_CPIO_FIELD_INVALID'],
    ['mtime NaN', file('f', { mtime: Number.NaN }), 'IRB_CPIO_FIELD_INVALID'],
    ['mtime 2^32', file('f', { mtime: 2 ** 32 }), 'IRB_CPIO_FIELD_INVALID'],
    ['mode too big', file('f', { mode: 0o200000 }), 'IRB_CPIO_FIELD_INVALID'],
    ['mode with other type', file('f', { mode: 0o40755 }), 'IRB_CPIO_FIELD_INVALID'],
    ['negative mode', file('f', { mode: -1 }), 'IRB_CPIO_FIELD_INVALID'],
    [
      'major 4096',
      { type: 'char', path: 'c', mode: 0o600, rdevMajor: 4096, rdevMinor: 0 },
      'IRB_CPIO_FIELD_INVALID',
    ],
    [
      'minor 2^20',
      { type: 'block', path: 'c', mode: 0o600, rdevMajor: 1, rdevMinor: 2 ** 20 },
      'IRB_CPIO_FIELD_INVALID',
    ],
    ['unknown type', { type: 'door', path: 'x', mode: 0 } as unknown as CpioEntry, 'IRB_CPIO_FIELD_INVALID'],
    ['missing body', file('f', { size: 3 }), 'IRB_CPIO_BODY_INVALID'],
    ['short Uint8Array body', file('f', { size: 3, body: new Uint8Array(2) }), 'IRB_CPIO_SIZE_MISMATCH'],
  ];

  it.each(cases)('refuses %s before writing any byte of the entry', async (_what, bad, code) => {
    // A body this long is passed through, so everything of the first entry is out before the second is looked at.
    const good: CpioEntry = {
      type: 'file',
      path: 'ok',
      mode: 0o644,
      size: 20_000,
      body: pseudoRandomBytes(20_000, 1),
    };
    const produced: Uint8Array[] = [];
    let error: unknown;
    try {
      for await (const c of packCpio([good, bad])) produced.push(c);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code, name: 'IrbError' });
    expect((error as Error).message).toMatch(/;/);
    // Only the first entry's bytes were produced: nothing of the bad one.
    const out = await concatStream(produced);
    const expected = await pack([good], { trailer: false });
    expect(out).toEqual(expected);
  });

  it('accepts names and targets of exactly 4095 bytes', async () => {
    const name = `${'d'.repeat(255)}/`.repeat(15) + 'n'.repeat(255);
    const target = 't'.repeat(4095);
    const got = await readBack(
      await pack([
        { type: 'file', path: name, mode: 0o644, size: 0 },
        { type: 'symlink', path: 's', mode: 0o777, target },
      ]),
    );
    expect(got[0]!.nameSize).toBe(4096);
    expect(got[1]!.target).toBe(target);
  });

  it('reports a streamed body that is too short or too long', async () => {
    for (const n of [9, 11]) {
      const err = await pack([
        { type: 'file', path: 'f', mode: 0o644, size: 10, body: chunked(new Uint8Array(n), 4) },
      ]).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'IRB_CPIO_SIZE_MISMATCH' });
      expect((err as Error).message).toContain('"f"');
    }
    const thunk = await pack(
      [{ type: 'file', path: 'f', mode: 0o644, size: 10, body: () => chunked(new Uint8Array(12), 5) }],
      { format: 'crc' },
    ).catch((e: unknown) => e);
    expect(thunk).toMatchObject({ code: 'IRB_CPIO_SIZE_MISMATCH' });
  });

  it('refuses string chunks and bad options', async () => {
    async function* strings(): AsyncGenerator<Uint8Array> {
      yield 'abc' as unknown as Uint8Array;
    }
    const err = await pack([{ type: 'file', path: 'f', mode: 0o644, size: 3, body: strings() }]).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'IRB_CPIO_BODY_INVALID' });
    await expect(pack([], { format: 'odc' as 'newc' })).rejects.toMatchObject({
      code: 'IRB_OPTION_INVALID',
    });
    await expect(pack([], { firstInode: -1 })).rejects.toMatchObject({ code: 'IRB_OPTION_INVALID' });
  });

  it('stops on abort', async () => {
    const ac = new AbortController();
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(20_000);
      ac.abort(new Error('stop'));
      yield new Uint8Array(20_000);
    }
    await expect(
      pack([{ type: 'file', path: 'f', mode: 0o644, size: 40_000, body: slow() }], { signal: ac.signal }),
    ).rejects.toThrow('stop');
  });
});
