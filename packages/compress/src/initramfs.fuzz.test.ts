import { type CpioEntry, packCpio, readCpio } from '@irb/cpio';
import {
  applyEdits,
  byteEdits,
  chunked,
  chunkSizes,
  collect,
  cpioEntries,
  cpioRecordsOf,
  type FuzzCpioEntry,
  fuzzTestTimeout,
  onlyIrbErrors,
  runFuzz,
} from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { compress } from './compress.ts';
import { memberJoint } from './framing.ts';
import { decodeInitramfs, type InitramfsMember } from './initramfs.ts';
import type { CompressionFormat } from './types.ts';
import { ZSTD_BACKEND_ENV } from './zstd.ts';

/*
 * decodeInitramfs over hostile archives: multi-member initramfs files in gzip, zstd, lz4 and
 * none, built as irb builds them, then damaged. It ends or throws an irb error with a catalogued
 * code and one line; the members it reports lie within the input, in order; what it yields is
 * within what the formats can encode. Undamaged, it gives back every entry of every member.
 */

type Member = { entries: FuzzCpioEntry[]; format: CompressionFormat; padding: number };

const members = fc.array(
  fc.record({
    entries: cpioEntries,
    format: fc.constantFrom<CompressionFormat>('gzip', 'zstd', 'lz4', 'none'),
    padding: fc.oneof(
      fc.constant(0),
      fc.constant(0),
      fc.nat(3).map((n) => n * 4),
    ),
  }),
  { minLength: 1, maxLength: 4 },
);

/** An initramfs of `list`: each member a packed cpio archive (own device number) compressed its way, joined as irb joins them. */
async function initramfs(list: readonly Member[]): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let length = 0;
  let previous: CompressionFormat | undefined;
  for (const [i, member] of list.entries()) {
    const archive = packCpio(member.entries as unknown as CpioEntry[], { device: { major: 0, minor: i } });
    const bytes = await collect(compress(archive, { format: member.format, threads: 1 }));
    const joint = previous === undefined ? new Uint8Array(0) : memberJoint(previous, member.format, length);
    // NUL padding is allowed between members only where the next starts aligned, as the kernel reads.
    const pad = new Uint8Array(member.format === 'none' || previous === 'lz4' ? 0 : member.padding);
    for (const part of [joint, pad, bytes]) {
      parts.push(part);
      length += part.byteLength;
    }
    previous = member.format;
  }
  return collect(chunked(Buffer.concat(parts)));
}

/** Decodes and reads every entry, checking the member reports as they come. */
async function decodeAll(bytes: Uint8Array, sizes: readonly number[]) {
  const reported: InitramfsMember[] = [];
  const decoded = decodeInitramfs(chunked(bytes, sizes), {
    onMember: (m) => {
      const last = reported[reported.length - 1];
      if (
        m.start < (last?.end ?? 0) ||
        m.end < m.start ||
        m.end > bytes.byteLength ||
        m.outputEnd < m.outputStart
      ) {
        throw new Error(`member ${JSON.stringify(m)} out of order or past the input`);
      }
      reported.push(m);
    },
  });
  const output = await collect(decoded, 32_768 * bytes.byteLength + 8 * 1024 * 1024);
  const entries: { name: Uint8Array; type: string; data: Uint8Array }[] = [];
  for await (const entry of readCpio([output])) {
    entries.push({ name: entry.nameBytes, type: entry.type, data: await entry.bytes() });
  }
  return { reported, entries };
}

afterEach(() => {
  delete process.env[ZSTD_BACKEND_ENV];
});

describe('decodeInitramfs under fuzzing', () => {
  it(
    'mutated multi-member archives (gzip, zstd, lz4, none) end cleanly or fail with a catalogued IRB code',
    async () => {
      await runFuzz(
        'initramfs: mutated archives',
        fc.tuple(members, byteEdits, chunkSizes, fc.constantFrom('napi', 'node')),
        async ([list, edits, sizes, backend]) => {
          process.env[ZSTD_BACKEND_ENV] = backend;
          const bytes = applyEdits(await initramfs(list), edits);
          await onlyIrbErrors(() => decodeAll(bytes, sizes));
        },
        { runs: 500 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'arbitrary bytes after NUL padding or a member magic end cleanly or fail with a catalogued IRB code',
    async () => {
      await runFuzz(
        'initramfs: arbitrary bytes',
        fc.tuple(
          fc.constantFrom(
            [],
            [0, 0, 0, 0],
            [0x30, 0x37, 0x30, 0x37, 0x30],
            [0x1f, 0x8b, 8],
            [0x28, 0xb5, 0x2f, 0xfd],
            [0x02, 0x21, 0x4c, 0x18],
            [0x50, 0x2a, 0x4d, 0x18],
          ),
          fc.uint8Array({ maxLength: 300 }),
          chunkSizes,
        ),
        async ([head, tail, sizes]) => {
          await onlyIrbErrors(() => decodeAll(Uint8Array.from([...head, ...tail]), sizes));
        },
        { runs: 300 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'an undamaged archive decodes to every entry of every member, one report per member',
    async () => {
      await runFuzz(
        'initramfs: round-trip',
        fc.tuple(members, chunkSizes),
        async ([list, sizes]) => {
          const { reported, entries } = await decodeAll(await initramfs(list), sizes);
          // Plain members split where the device number changes; a compressed one is one member.
          expect(reported.length).toBeGreaterThanOrEqual(list.length);
          const expected = list.flatMap((m) => cpioRecordsOf(m.entries));
          expect(entries).toEqual(expected);
        },
        { runs: 150 },
      );
    },
    fuzzTestTimeout(),
  );
});
