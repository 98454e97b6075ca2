import { Readable } from 'node:stream';
import { createGzip, gzipSync } from 'node:zlib';
import { type CpioEntry, packCpio, readCpio } from '@irb/cpio';
import { describe, expect, it } from 'vitest';
import { compress, decodeInitramfs, type InitramfsMember, ZSTD_BACKEND_ENV } from '../src/index.ts';
import { chunked, collect, run } from './helpers.ts';

function entries(prefix: string, count: number): CpioEntry[] {
  const list: CpioEntry[] = [{ type: 'directory', path: prefix, mode: 0o755 }];
  for (let i = 0; i < count; i++) {
    const body = Buffer.from(`${prefix} file ${i} `.repeat(1 + ((i * 37) % 400)));
    list.push({ type: 'file', path: `${prefix}/f${i}`, mode: 0o644, uid: i, size: body.length, body });
  }
  list.push({ type: 'char', path: `${prefix}/console`, mode: 0o600, rdevMajor: 5, rdevMinor: 1 });
  return list;
}

const cpioOf = async (list: CpioEntry[]): Promise<Buffer> => collect(packCpio(list));

async function names(bytes: Uint8Array, chunk = 4096, members?: InitramfsMember[]): Promise<string[]> {
  const out: string[] = [];
  const decoded = decodeInitramfs(chunked(bytes, chunk), members ? { onMember: (m) => members.push(m) } : {});
  for await (const entry of readCpio(decoded)) {
    out.push(`${entry.member}:${entry.name}:${(await entry.bytes()).length}`);
  }
  return out;
}

async function failure(bytes: Uint8Array): Promise<{ code: string; message: string }> {
  try {
    await names(bytes);
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message };
  }
  throw new Error('expected a failure');
}

describe('decodeInitramfs', () => {
  for (const backend of ['napi', 'node']) {
    it(`walks plain, gzip and zstd members with NUL padding, as the kernel does (zstd: ${backend})`, async () => {
      process.env[ZSTD_BACKEND_ENV] = backend;
      const a = await cpioOf(entries('a', 30));
      const b = await cpioOf(entries('b', 20));
      const c = await cpioOf(entries('c', 10));
      const d = await cpioOf(entries('d', 5));
      const gz = await collect(compress(chunked(b), { format: 'gzip', threads: 2 }));
      const zst = await collect(compress(chunked(c), { format: 'zstd' }));
      // A gzip member holding two archives with NUL padding, written by gzip(1) with a file name.
      const gz2 = (await run('gzip', ['-c'], Buffer.concat([d, Buffer.alloc(512), a]))).stdout;
      const pad = (n: number) => Buffer.alloc(n);
      const file = Buffer.concat([a, pad(8), gz, pad(3), zst, gz2, pad(1), zst]);
      const padTo4 = (4 - (file.length % 4)) % 4;
      const all = Buffer.concat([file, pad(padTo4), d, pad(100)]);

      const expected = await names(a);
      for (const chunk of [1, 7, 4096, 1 << 20]) {
        const members: InitramfsMember[] = [];
        const listed = await names(all, chunk, members);
        expect(listed.filter((n) => n.startsWith('0:'))).toEqual(expected);
        expect(listed.map((n) => n.split(':')[1]!.split('/')[0])).toEqual([
          ...Array(32).fill('a'),
          ...Array(22).fill('b'),
          ...Array(12).fill('c'),
          ...Array(7).fill('d'),
          ...Array(32).fill('a'),
          ...Array(12).fill('c'),
          ...Array(7).fill('d'),
        ]);
        expect(members.map((m) => m.format)).toEqual(['none', 'gzip', 'zstd', 'gzip', 'zstd', 'none']);
        expect(members[0]).toEqual({
          index: 0,
          format: 'none',
          start: 0,
          end: a.length,
          outputStart: 0,
          outputEnd: a.length,
        });
        expect(members[1]!.outputStart).toBe(a.length);
        expect(members[1]!.start).toBe(a.length + 8);
        expect(members[1]!.end).toBe(a.length + 8 + gz.length);
      }
      delete process.env[ZSTD_BACKEND_ENV];
    });
  }

  it('walks lz4 members: the end mark ends one before any other member, each stream is a member', async () => {
    const a = await cpioOf(entries('a', 30));
    const b = await cpioOf(entries('b', 20));
    const c = await cpioOf(entries('c', 10));
    const d = await cpioOf(entries('d', 5));
    const lzA = await collect(compress(chunked(a), { format: 'lz4', endMark: true }));
    const gz = await collect(compress(chunked(b), { format: 'gzip' }));
    const bare = await collect(compress(chunked(c), { format: 'lz4' }));
    // lz4 -l output, as the tool writes it, after the gzip member.
    const cli = (await run('lz4', ['-l', '-c'], d)).stdout;
    const gzPad = Buffer.alloc((4 - (gz.length % 4)) % 4);
    const all = Buffer.concat([lzA, gz, gzPad, Buffer.alloc(4), bare, bare, cli, Buffer.alloc(4), lzA, d]);
    expect(lzA.length % 4).toBe(0);
    for (const chunk of [3, 4096, 1 << 20]) {
      const members: InitramfsMember[] = [];
      const listed = await names(all, chunk, members);
      expect(listed.map((n) => n.split(':')[1]!.split('/')[0])).toEqual([
        ...Array(32).fill('a'),
        ...Array(22).fill('b'),
        ...Array(12).fill('c'),
        ...Array(12).fill('c'),
        ...Array(7).fill('d'),
        ...Array(32).fill('a'),
        ...Array(7).fill('d'),
      ]);
      // The kernel reads lz4 streams back to back as one (it skips the magic word); each is a member here.
      expect(members.map((m) => m.format)).toEqual(['lz4', 'gzip', 'lz4', 'lz4', 'lz4', 'lz4', 'none']);
      // The member ends where the kernel's unlz4 stops: at the zero word, which is padding.
      expect(members[0]).toMatchObject({ index: 0, format: 'lz4', start: 0, end: lzA.length - 4 });
      expect(members[1]!.start).toBe(lzA.length);
      expect(members[3]!.start).toBe(members[2]!.end);
    }
  });

  it('fails like the kernel when another member follows an lz4 member without the end mark', async () => {
    const a = await cpioOf(entries('a', 3));
    const bare = await collect(compress(chunked(a), { format: 'lz4' }));
    const gz = await collect(compress(chunked(a), { format: 'gzip' }));
    // The gzip header reads as a block length longer than what is left.
    const beforeGzip = await failure(Buffer.concat([bare, gz]));
    expect(beforeGzip.code).toBe('IRB_LZ4_TRUNCATED');
    expect(beforeGzip.message).toContain('lz4 member at byte 0');
    // "0707" reads as a block length no 8 MiB block can have.
    const beforeCpio = await failure(Buffer.concat([bare, a]));
    expect(beforeCpio.code).toBe('IRB_LZ4_CORRUPT');
    expect(beforeCpio.message).toContain('NUL padding');
    const lz = await collect(compress(chunked(a), { format: 'lz4' }));
    expect((await failure(lz.subarray(0, lz.length - 50))).code).toBe('IRB_LZ4_TRUNCATED');
  });

  it('reads what GNU cpio wrote (512-byte NUL padding) inside gzip', async () => {
    const list = (await names(await cpioOf(entries('x', 3)))).length;
    const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp('/tmp/irb-initramfs-'));
    const { writeFile, rm } = await import('node:fs/promises');
    try {
      await writeFile(`${dir}/one`, 'one');
      await writeFile(`${dir}/two`, 'two two');
      const cpio = await new Promise<Buffer>((resolve, reject) => {
        import('node:child_process').then(({ spawn }) => {
          const child = spawn('cpio', ['-o', '-H', 'newc', '--quiet'], { cwd: dir });
          const out: Buffer[] = [];
          child.stdout.on('data', (d: Buffer) => out.push(d));
          child.on('error', reject);
          child.on('close', () => resolve(Buffer.concat(out)));
          child.stdin.end('one\ntwo\n');
        });
      });
      expect(cpio.length % 512).toBe(0);
      const gz = gzipSync(cpio);
      // The kernel wants a plain archive 4-byte aligned in the file: NULs fill the gap.
      const listed = await names(Buffer.concat([gz, Buffer.alloc((4 - (gz.length % 4)) % 4), cpio]));
      expect(listed).toEqual(['0:one:3', '0:two:7', '1:one:3', '1:two:7']);
      expect(list).toBe(5);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports junk, misaligned archives, truncated and unsupported members', async () => {
    const a = await cpioOf(entries('a', 3));
    const gz = await collect(compress(chunked(a), { format: 'gzip' }));
    const junk = await failure(Buffer.concat([a, Buffer.from('junk')]));
    expect(junk.code).toBe('IRB_INITRAMFS_CORRUPT');
    expect(junk.message).toContain(`${a.length}`);
    // A gzip member whose length is not a multiple of 4, followed directly by a plain archive.
    let odd = gzipSync(a);
    for (let k = 1; odd.length % 4 === 0; k++) odd = gzipSync(Buffer.concat([a, Buffer.alloc(k)]));
    const misaligned = await failure(Buffer.concat([odd, a]));
    expect(misaligned.code).toBe('IRB_INITRAMFS_CORRUPT');
    expect(misaligned.message).toContain('4-byte aligned');
    expect((await failure(gz.subarray(0, gz.length - 3))).code).toBe('IRB_GZIP_TRUNCATED');
    expect((await failure(gz.subarray(0, gz.length / 2))).code).toBe('IRB_GZIP_TRUNCATED');
    const badCrc = Buffer.from(gz);
    badCrc[badCrc.length - 8]! ^= 1;
    expect((await failure(badCrc)).code).toBe('IRB_GZIP_CORRUPT');
    // A compressed member must end between two records (the kernel: "junk at the end of compressed archive").
    const noTrailer = await collect(packCpio(entries('n', 2), { trailer: false }));
    const cut = await failure(Buffer.concat([gzipSync(noTrailer.subarray(0, noTrailer.length - 8)), gz]));
    expect(cut.code).toBe('IRB_INITRAMFS_CORRUPT');
    expect(cut.message).toContain('gzip member at byte 0');
    expect(cut.message).toContain('cut short');
    // A zstd skippable frame where a member starts: the kernel knows no such magic.
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]), gz]);
    expect((await failure(skippable)).message).toContain('skippable frame');
    // Junk inside a compressed member.
    expect((await failure(gzipSync(Buffer.concat([a, Buffer.from('xx')])))).code).toBe(
      'IRB_INITRAMFS_CORRUPT',
    );
    const zst = await collect(compress(chunked(a), { format: 'zstd' }));
    expect((await failure(zst.subarray(0, zst.length - 5))).code).toBe('IRB_ZSTD_TRUNCATED');
    const xz = Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0);
    const unsupported = await failure(Buffer.concat([a, xz]));
    expect(unsupported.code).toBe('IRB_COMPRESSION_UNSUPPORTED');
    expect(unsupported.message).toContain(`member at byte ${a.length}`);
  });

  it('fails on deflate data zlib rejects, instead of waiting for a write that never completes', async () => {
    const a = await cpioOf(entries('a', 30));
    // The first byte of the deflate stream set to 0xff: final block, reserved block type 3.
    const badType = Buffer.from(gzipSync(a));
    badType[10] = 0xff;
    const bad = await failure(badType);
    expect(bad.code).toBe('IRB_GZIP_CORRUPT');
    expect(bad.message).toContain('invalid block type');
    // The same in the second member, after one that decodes.
    const second = await failure(Buffer.concat([gzipSync(a), badType]));
    expect(second.code).toBe('IRB_GZIP_CORRUPT');
  });

  it('holds a few chunks of a member that inflates a thousandfold, not the output of a whole write', async () => {
    // 512 MiB of zeros in one file: about 0.5 MiB of gzip, handed over in 1 MiB chunks, so every
    // 256 KiB written to zlib inflates to ~260 MiB.
    const size = 512 << 20;
    const zeros = new Uint8Array(1 << 20);
    async function* body() {
      for (let i = 0; i < size / zeros.length; i++) yield zeros;
    }
    const entry: CpioEntry = { type: 'file', path: 'big', mode: 0o644, size, body: body() };
    const bomb = await collect(Readable.from(packCpio([entry])).pipe(createGzip()));
    expect(bomb.length).toBeLessThan(1 << 20);
    let total = 0;
    let biggest = 0;
    let heldMost = 0;
    for await (const chunk of decodeInitramfs(chunked(bomb, 1 << 20))) {
      total += chunk.length;
      biggest = Math.max(biggest, chunk.length);
      heldMost = Math.max(heldMost, process.memoryUsage().arrayBuffers);
    }
    expect(total).toBeGreaterThan(size);
    expect(biggest).toBeLessThanOrEqual(256 * 1024);
    // Chunks already handed on wait for V8's collector too; a write's whole output would be ~260 MiB.
    expect(heldMost).toBeLessThan(160 << 20);
  });

  it('refuses an empty input and one of NUL bytes only', async () => {
    const empty = await failure(new Uint8Array(0));
    expect(empty.code).toBe('IRB_INITRAMFS_CORRUPT');
    expect(empty.message).toContain('is empty');
    const zeros = await failure(new Uint8Array(4096));
    expect(zeros.code).toBe('IRB_INITRAMFS_CORRUPT');
    expect(zeros.message).toContain('only NUL bytes');
  });
});
