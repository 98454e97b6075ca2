import { type CpioEntry, packCpio, readCpio } from '@irb/cpio';
import { describe, expect, it } from 'vitest';
import {
  COMPRESSION_FORMATS,
  type CompressionFormat,
  compress,
  decodeInitramfs,
  decompress,
  type InitramfsMember,
  IRB_ARCHIVE_NAME,
  memberJoint,
  TRAILER_RECORD,
  trailerMember,
} from '../src/index.ts';
import { chunked, collect, run } from './helpers.ts';

function entries(prefix: string, count: number): CpioEntry[] {
  const list: CpioEntry[] = [{ type: 'directory', path: prefix, mode: 0o755 }];
  for (let i = 0; i < count; i++) {
    const body = Buffer.from(`${prefix} file ${i} `.repeat(1 + ((i * 37) % 400)));
    list.push({ type: 'file', path: `${prefix}/f${i}`, mode: 0o644, size: body.length, body });
  }
  return list;
}

/** One member as irb writes it: records without a trailer, compressed on their own. */
async function member(list: CpioEntry[], format: CompressionFormat, minor: number): Promise<Buffer> {
  const cpio = packCpio(list, { trailer: false, device: { major: 0, minor } });
  return collect(
    format === 'none' ? cpio : compress(cpio, { format, ...(minor === 0 ? { name: IRB_ARCHIVE_NAME } : {}) }),
  );
}

/** Members in irb's layout: each after the joint its predecessor needs, then the trailer member. */
async function archive(parts: Array<[CpioEntry[], CompressionFormat]>): Promise<Buffer> {
  const out: Buffer[] = [];
  let size = 0;
  let previous: CompressionFormat | undefined;
  for (const [i, [list, format]] of parts.entries()) {
    if (previous !== undefined) {
      const joint = Buffer.from(memberJoint(previous, format, size));
      out.push(joint);
      size += joint.length;
    }
    const bytes = await member(list, format, i);
    out.push(bytes);
    size += bytes.length;
    previous = format;
  }
  out.push(Buffer.from(trailerMember(previous ?? 'none')));
  return Buffer.concat(out);
}

async function listed(bytes: Uint8Array, members?: InitramfsMember[]): Promise<string[]> {
  const names: string[] = [];
  const decoded = decodeInitramfs(chunked(bytes, 5000), members ? { onMember: (m) => members.push(m) } : {});
  for await (const entry of readCpio(decoded)) names.push(entry.name);
  return names;
}

const decoder: Record<Exclude<CompressionFormat, 'none'>, string[]> = {
  gzip: ['gzip', '-dc'],
  zstd: ['zstd', '-dcq'],
  lz4: ['lz4', '-dcq'],
};
const tester: Record<Exclude<CompressionFormat, 'none'>, string[]> = {
  gzip: ['gzip', '-t'],
  zstd: ['zstd', '-tq'],
  lz4: ['lz4', '-tq'],
};

describe("irb's initramfs layout", () => {
  it('has trailer members that the standard tools and irb decode to the TRAILER!!! record', async () => {
    const record = await collect(packCpio([]));
    expect(Buffer.from(TRAILER_RECORD).equals(record)).toBe(true);
    expect(trailerMember('none')).toEqual(TRAILER_RECORD);
    for (const format of ['gzip', 'zstd', 'lz4'] as const) {
      const bytes = trailerMember(format);
      const tested = await run(tester[format][0]!, tester[format].slice(1), bytes);
      expect(tested.code, `${format}: ${tested.stderr}`).toBe(0);
      const decoded = await run(decoder[format][0]!, decoder[format].slice(1), bytes);
      expect(decoded.code, decoded.stderr).toBe(0);
      expect(decoded.stdout.equals(record), format).toBe(true);
      expect((await collect(decompress(chunked(bytes)))).equals(record)).toBe(true);
    }
    expect(new Set(COMPRESSION_FORMATS.map((f) => Buffer.from(trailerMember(f)).toString('hex'))).size).toBe(
      4,
    );
  });

  for (const format of COMPRESSION_FORMATS) {
    it(`reads back to back ${format} members as one archive in the standard tools, as members in irb`, async () => {
      const parts: Array<[CpioEntry[], CompressionFormat]> = [
        [entries('base', 40), format],
        [entries('overlay', 5), format],
        [entries('job', 2), format],
      ];
      const bytes = await archive(parts);
      const expected = parts.flatMap(([list]) => list.map((e) => e.path));
      const members: InitramfsMember[] = [];
      expect(await listed(bytes, members)).toEqual(expected);
      // Three members and the trailer member; without compression, told apart by their device numbers.
      expect(members.length).toBe(4);
      const plain =
        format === 'none' ? bytes : (await run(decoder[format][0]!, decoder[format].slice(1), bytes)).stdout;
      const cpio = await run('cpio', ['-it', '--quiet'], plain);
      expect(cpio.code, cpio.stderr).toBe(0);
      expect(cpio.stdout.toString().trimEnd().split('\n')).toEqual(expected);
      if (format !== 'none') {
        const tested = await run(tester[format][0]!, tester[format].slice(1), bytes);
        expect(tested.code, tested.stderr).toBe(0);
      }
    });
  }

  it('puts only what a change of compression needs between members', async () => {
    expect(memberJoint('gzip', 'gzip', 13).length).toBe(0);
    expect(memberJoint('lz4', 'lz4', 13).length).toBe(0);
    expect(memberJoint('none', 'gzip', 16).length).toBe(0);
    expect(memberJoint('gzip', 'zstd', 13).length).toBe(0);
    expect(memberJoint('zstd', 'lz4', 13).length).toBe(0);
    expect(memberJoint('gzip', 'none', 13).length).toBe(3);
    expect(memberJoint('zstd', 'none', 16).length).toBe(0);
    // A zero word, then NULs up to a multiple of 4.
    expect(memberJoint('lz4', 'gzip', 13).length).toBe(7);
    expect(memberJoint('lz4', 'none', 16).length).toBe(4);
    const parts: Array<[CpioEntry[], CompressionFormat]> = [
      [entries('a', 3), 'lz4'],
      [entries('b', 3), 'gzip'],
      [entries('c', 3), 'none'],
      [entries('d', 3), 'zstd'],
      [entries('e', 3), 'none'],
      [entries('f', 3), 'lz4'],
      [entries('g', 3), 'none'],
    ];
    const members: InitramfsMember[] = [];
    const names = await listed(await archive(parts), members);
    expect(names).toEqual(parts.flatMap(([list]) => list.map((e) => e.path)));
    expect(members.map((m) => m.format)).toEqual([
      'lz4',
      'gzip',
      'none',
      'zstd',
      'none',
      'lz4',
      'none',
      'none',
    ]);
  });
});
