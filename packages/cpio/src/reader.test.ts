import { describe, expect, it } from 'vitest';
import { CPIO_HEADER_SIZE, cpioRecordSize, parseCpioHeader } from './newc.ts';
import { type CpioMemberInfo, type CpioReadEnd, readCpio } from './reader.ts';
import { fromReadableStream, toReadableStream } from './streams.ts';
import { concatStream, pseudoRandomBytes, readBack, rechunk } from './test-helpers.ts';
import type { CpioEntry } from './types.ts';
import { type PackCpioOptions, packCpio } from './writer.ts';

const enc = new TextEncoder();
const pack = (entries: CpioEntry[], options?: PackCpioOptions) => concatStream(packCpio(entries, options));

function sample(tag: string): CpioEntry[] {
  return [
    { type: 'directory', path: tag, mode: 0o755 },
    { type: 'file', path: `${tag}/one`, mode: 0o644, size: 5, body: enc.encode('one!\n') },
    { type: 'file', path: `${tag}/big`, mode: 0o600, size: 70_001, body: pseudoRandomBytes(70_001, 5) },
    { type: 'symlink', path: `${tag}/ln`, mode: 0o777, target: 'one' },
    { type: 'file', path: `${tag}/h1`, mode: 0o644, size: 2, body: enc.encode('hh'), links: [`${tag}/h2`] },
  ];
}

async function readError(input: Uint8Array, options = {}): Promise<unknown> {
  try {
    await readBack(input, options);
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('readCpio', () => {
  it('reads the same entries whatever the input chunking', async () => {
    const archive = await pack(sample('x'), { format: 'crc' });
    const whole = await readBack(archive);
    for (const sizes of [[1], [3, 7], [109, 1, 4096], [65536]]) {
      expect(await readBack(rechunk(archive, sizes))).toEqual(whole);
    }
  });

  it('reads concatenated archives with NUL padding and tells the member of each entry', async () => {
    const a = await pack(sample('a'));
    const b = await pack(sample('b'), { format: 'crc' });
    const input = new Uint8Array(a.length + 512 + b.length + 8);
    input.set(a, 0);
    input.set(b, a.length + 512);
    const ends: CpioMemberInfo[] = [];
    let end: CpioReadEnd | undefined;
    const got = await readBack(rechunk(input, [1000]), {
      onMemberEnd: (m: CpioMemberInfo) => ends.push(m),
      onEnd: (e: CpioReadEnd) => (end = e),
    });
    expect(got.map((e) => [e.member, e.name, e.format])).toEqual([
      [0, 'a', 'newc'],
      [0, 'a/one', 'newc'],
      [0, 'a/big', 'newc'],
      [0, 'a/ln', 'newc'],
      [0, 'a/h1', 'newc'],
      [0, 'a/h2', 'newc'],
      [1, 'b', 'crc'],
      [1, 'b/one', 'crc'],
      [1, 'b/big', 'crc'],
      [1, 'b/ln', 'crc'],
      [1, 'b/h1', 'crc'],
      [1, 'b/h2', 'crc'],
    ]);
    expect(ends).toEqual([
      { member: 0, start: 0, end: a.length, entries: 6 },
      { member: 1, start: a.length + 512, end: a.length + 512 + b.length, entries: 6 },
    ]);
    expect(end).toEqual({ members: 2, bytesConsumed: input.length, rest: new Uint8Array(0) });
    expect(got[6]!.offset).toBe(a.length + 512);
  });

  it('with members "one" stops after the first trailer and leaves the rest to the caller', async () => {
    const a = await pack(sample('a'));
    const tail = enc.encode('\x1f\x8bcompressed member follows');
    const input = new Uint8Array(a.length + tail.length);
    input.set(a);
    input.set(tail, a.length);
    const source = rechunk(input, [4000]);
    let end: CpioReadEnd | undefined;
    const names: string[] = [];
    for await (const e of readCpio(source, { members: 'one', onEnd: (x) => (end = x) })) names.push(e.name);
    expect(names).toHaveLength(6);
    expect(end!.bytesConsumed).toBe(a.length);
    // The rest of the last chunk plus what the source still holds is exactly the data after the archive.
    const after = await concatStream([end!.rest, ...(await arrayFrom(source))]);
    expect(after).toEqual(tail);
  });

  it('skips bodies the consumer does not read, also half-read ones', async () => {
    const archive = await pack(sample('s'), { format: 'crc' });
    const names: string[] = [];
    for await (const e of readCpio(rechunk(archive, [5000]))) {
      names.push(e.name);
      if (e.name === 's/big') {
        for await (const c of e.body) {
          expect(c.length).toBeGreaterThan(0);
          break;
        }
      }
    }
    expect(names).toEqual(['s', 's/one', 's/big', 's/ln', 's/h1', 's/h2']);
  });

  it('verifies the checksum of a body read to its last byte without the final next()', async () => {
    const archive = await pack(sample('c'), { format: 'crc' });
    const h = parseCpioHeader(archive);
    const one = cpioRecordSize(h) + 120; // body of c/one
    archive[one] = (archive[one]! + 1) & 0xff;
    const read = async () => {
      for await (const e of readCpio([archive])) {
        if (e.name !== 'c/one') continue;
        const it = e.body[Symbol.asyncIterator]();
        const first = await it.next();
        expect(first.value).toHaveLength(5);
      }
    };
    await expect(read()).rejects.toMatchObject({ code: 'IRB_CPIO_CHECKSUM_MISMATCH' });
  });

  it('refuses to read a body after moving on', async () => {
    const archive = await pack(sample('s'));
    const entries = [];
    for await (const e of readCpio([archive])) entries.push(e);
    await expect(entries[1]!.bytes()).rejects.toMatchObject({ code: 'IRB_CPIO_BODY_UNAVAILABLE' });
    // Symlink targets are held, so they stay readable.
    expect(new TextDecoder().decode(await entries[3]!.bytes())).toBe('one');
  });

  it('streams large bodies as slices of the input without copying', async () => {
    const archive = await pack([
      { type: 'file', path: 'f', mode: 0o644, size: 1 << 20, body: new Uint8Array(1 << 20) },
    ]);
    const chunk = archive.slice();
    for await (const e of readCpio([chunk])) {
      for await (const c of e.body) expect(c.buffer).toBe(chunk.buffer);
    }
  });

  it('round-trips through web streams', async () => {
    const archive = await pack(sample('w'));
    const viaWeb = await concatStream(fromReadableStream(toReadableStream(packCpio(sample('w')))));
    expect(viaWeb).toEqual(archive);
    const got = await readBack(fromReadableStream(toReadableStream(rechunk(archive, [333]))));
    expect(got.map((e) => e.name)).toEqual(['w', 'w/one', 'w/big', 'w/ln', 'w/h1', 'w/h2']);
  });

  it('accepts an empty input and NUL padding only', async () => {
    expect(await readBack(new Uint8Array(0))).toEqual([]);
    expect(await readBack(new Uint8Array(512))).toEqual([]);
  });

  it('reads lower-case hex', async () => {
    const archive = await pack([{ type: 'file', path: 'f', mode: 0o644, size: 0, uid: 0xabcdef }]);
    const lower = enc.encode(new TextDecoder().decode(archive.subarray(0, CPIO_HEADER_SIZE)).toLowerCase());
    archive.set(lower, 0);
    expect((await readBack(archive))[0]!.uid).toBe(0xabcdef);
  });
});

describe('readCpio errors', () => {
  const corrupt = async (edit: (a: Uint8Array) => unknown, options = {}) => {
    const archive = await pack(sample('e'), { format: 'crc' });
    edit(archive);
    return readBack(archive, options).then(
      () => undefined,
      (e: unknown) => e,
    );
  };

  it('bad magic, with a hint for compressed and odc input', async () => {
    expect(await corrupt((a) => void a.set(enc.encode('070707'), 0))).toMatchObject({
      code: 'IRB_CPIO_MAGIC_INVALID',
      message: expect.stringContaining('-H newc'),
    });
    expect(await corrupt((a) => void a.set([0x1f, 0x8b], 0))).toMatchObject({
      code: 'IRB_CPIO_MAGIC_INVALID',
      message: expect.stringContaining('gzip'),
    });
    expect(await corrupt((a) => void a.set(enc.encode('hello!'), 0))).toMatchObject({
      code: 'IRB_CPIO_MAGIC_INVALID',
    });
  });

  it('bad hex names the field', async () => {
    const err = await corrupt((a) => void a.set(enc.encode('G'), 6 + 8 * 6));
    expect(err).toMatchObject({
      code: 'IRB_CPIO_HEADER_INVALID',
      message: expect.stringContaining('fileSize'),
    });
  });

  it('truncation anywhere', async () => {
    const archive = await pack(sample('t'));
    for (const cut of [50, 110, 113, 200, 1000, archive.length - 124, archive.length - 1]) {
      const err = await readBack(archive.subarray(0, cut)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, `cut at ${cut}`).toMatchObject({ code: 'IRB_CPIO_TRUNCATED' });
    }
  });

  it('checksum mismatch in 070702, unless switched off', async () => {
    const flip = (a: Uint8Array) => {
      const h = parseCpioHeader(a);
      const second = cpioRecordSize(h);
      a[second + 120] = (a[second + 120]! + 1) & 0xff; // first body byte of e/one
    };
    expect(await corrupt(flip)).toMatchObject({
      code: 'IRB_CPIO_CHECKSUM_MISMATCH',
      message: expect.stringContaining('e/one'),
    });
    expect(await corrupt(flip, { verifyChecksum: false })).toBeUndefined();
  });

  it('junk after the trailer and misaligned members', async () => {
    const a = await pack(sample('j'));
    const junk = new Uint8Array(a.length + 8);
    junk.set(a);
    junk[a.length + 4] = 0x42;
    expect(await readError(junk)).toMatchObject({ code: 'IRB_CPIO_TRAILING_DATA' });
    const misaligned = new Uint8Array(a.length * 2 + 2);
    misaligned.set(a);
    misaligned.set(a, a.length + 2);
    expect(await readError(misaligned)).toMatchObject({ code: 'IRB_CPIO_HEADER_INVALID' });
  });

  it('bad name fields', async () => {
    const zeroName = await corrupt((a) => void a.set(enc.encode('00000000'), 6 + 8 * 11));
    expect(zeroName).toMatchObject({ code: 'IRB_CPIO_HEADER_INVALID' });
    const unterminated = await corrupt((a) => void a.set([0x41], CPIO_HEADER_SIZE + 1));
    expect(unterminated).toMatchObject({ code: 'IRB_CPIO_HEADER_INVALID' });
  });

  it('text chunks', async () => {
    expect(await readBack(['070701' as unknown as Uint8Array]).catch((e: unknown) => e)).toMatchObject({
      code: 'IRB_CPIO_INPUT_INVALID',
    });
  });
});

describe('random entries', () => {
  it('survive a round trip with every field intact', async () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return Math.floor((seed / 2 ** 32) * n);
    };
    const kinds = ['file', 'directory', 'symlink', 'char', 'block', 'fifo', 'socket'] as const;
    for (let round = 0; round < 20; round++) {
      const entries: CpioEntry[] = [];
      const count = 1 + rnd(40);
      for (let i = 0; i < count; i++) {
        const type = kinds[rnd(kinds.length)]!;
        const nameBytes = pseudoRandomBytes(1 + rnd(250), seed).map((b) =>
          b === 0 || b === 0x2f ? 0x61 : b,
        );
        const path = rnd(2)
          ? new Uint8Array([...enc.encode(`r${round}-${i}/`), ...nameBytes])
          : `r${round}-${i}`;
        const common = {
          path,
          mode: rnd(0o10000),
          uid: rnd(2 ** 32),
          gid: rnd(2 ** 32),
          mtime: rnd(2 ** 32),
        };
        if (type === 'file') {
          const size = rnd(3) === 0 ? 0 : rnd(40_000);
          entries.push({ type, ...common, size, body: pseudoRandomBytes(size, i + 1) });
        } else if (type === 'symlink') {
          entries.push({
            type,
            ...common,
            target: pseudoRandomBytes(1 + rnd(100), i + 7).map((b) => b || 1),
          });
        } else if (type === 'char' || type === 'block') {
          entries.push({ type, ...common, rdevMajor: rnd(4096), rdevMinor: rnd(2 ** 20) });
        } else {
          entries.push({ type, ...common });
        }
      }
      const format = rnd(2) ? 'crc' : 'newc';
      const archive = await pack(entries, { format });
      const got = await readBack(rechunk(archive, [1 + rnd(9000)]));
      expect(got).toHaveLength(entries.length);
      for (const [i, e] of entries.entries()) {
        const g = got[i]!;
        const bytes = typeof e.path === 'string' ? enc.encode(e.path) : e.path;
        expect(g.nameBytes).toEqual(bytes);
        expect(g.type).toBe(e.type);
        expect([g.permissions, g.uid, g.gid, g.mtime, g.ino]).toEqual([e.mode, e.uid, e.gid, e.mtime, i + 1]);
        if (e.type === 'file') expect(g.data).toEqual(e.body);
        if (e.type === 'symlink') expect(g.targetBytes).toEqual(e.target);
        if (e.type === 'char' || e.type === 'block')
          expect([g.rdevMajor, g.rdevMinor]).toEqual([e.rdevMajor, e.rdevMinor]);
      }
    }
  });
});

async function arrayFrom<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
