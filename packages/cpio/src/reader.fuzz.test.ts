import {
  applyEdits,
  byteEdits,
  chunked,
  chunkSizes,
  cpioEntries,
  cpioRecordsOf,
  type FuzzCpioEntry,
  fuzzTestTimeout,
  joined,
  onlyIrbErrors,
  runFuzz,
} from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CPIO_HEADER_SIZE } from './newc.ts';
import { readCpio } from './reader.ts';
import { concatStream } from './test-helpers.ts';
import type { CpioEntry } from './types.ts';
import { packCpio } from './writer.ts';

/*
 * readCpio over hostile bytes: it ends, or throws a CpioError with a catalogued code and one
 * line; no entry hands out more body than its header promised, and every byte it reports lies
 * within the input. Over archives packCpio wrote it gives back every entry exactly.
 */

interface ReadSummary {
  entries: { name: Uint8Array; type: string; data: Uint8Array; member: number }[];
}

/** Reads every entry, reading all, some or none of each body, and checks what each entry may claim. */
async function readAll(
  bytes: Uint8Array,
  sizes: readonly number[],
  bodies: 'all' | 'some' | 'none',
): Promise<ReadSummary> {
  const entries: ReadSummary['entries'] = [];
  let previous = -1;
  for await (const entry of readCpio(chunked(bytes, sizes))) {
    if (entry.offset <= previous || entry.offset + CPIO_HEADER_SIZE > bytes.byteLength) {
      throw new Error(`entry offset ${entry.offset} out of order or past the input`);
    }
    previous = entry.offset;
    if (entries.length > bytes.byteLength / CPIO_HEADER_SIZE)
      throw new Error('more entries than headers fit');
    let data: Uint8Array = new Uint8Array(0);
    if (bodies === 'all') data = await entry.bytes();
    else if (bodies === 'some') {
      for await (const chunk of entry.body) {
        data = chunk.slice();
        break;
      }
    }
    const limit = entry.type === 'symlink' ? (entry.targetBytes?.byteLength ?? 0) : entry.fileSize;
    if (data.byteLength > limit)
      throw new Error(`a body of ${data.byteLength} bytes for a size of ${entry.fileSize}`);
    if (bodies === 'all' && data.byteLength !== limit) throw new Error('a body shorter than its size');
    entries.push({ name: entry.nameBytes, type: entry.type, data, member: entry.member });
  }
  return { entries };
}

const hex = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);

/** A newc record with random fields: sizes near, at and far from the truth; hex digits or not. */
const record = fc
  .record({
    magic: fc.constantFrom('070701', '070702', '070707', '07070X'),
    mode: fc.constantFrom(0o100644, 0o40755, 0o120777, 0o20600, 0o60600, 0o10644, 0o140755, 0o170000, 0),
    name: fc.oneof(fc.constant(ascii('TRAILER!!!')), fc.uint8Array({ maxLength: 20 })),
    nameSkew: fc.oneof(fc.constant(0), fc.integer({ min: -3, max: 3 }), fc.constant(0x7fff_ffff)),
    body: fc.uint8Array({ maxLength: 300 }),
    sizeSkew: fc.oneof(fc.constant(0), fc.integer({ min: -5, max: 5 }), fc.constant(0xffff_ffff)),
    check: fc.nat(),
    garble: fc.option(fc.tuple(fc.nat(CPIO_HEADER_SIZE - 1), fc.constantFrom('g', ' ', '-', '\0', 'x')), {
      nil: undefined,
    }),
    pad: fc.boolean(),
  })
  .map((r) => {
    const nameSize = r.name.byteLength + 1 + r.nameSkew;
    const fields = [1, r.mode, 0, 0, 1, 0, r.body.byteLength + r.sizeSkew, 0, 0, 0, 0, nameSize, r.check];
    const head = ascii(r.magic + fields.map(hex).join(''));
    if (r.garble) head[r.garble[0]] = r.garble[1].charCodeAt(0);
    const name = new Uint8Array(r.name.byteLength + 1);
    name.set(r.name);
    const pad = (n: number) => new Uint8Array(r.pad ? (4 - (n % 4)) % 4 : 0);
    return joined(head, name, pad(CPIO_HEADER_SIZE + name.byteLength), r.body, pad(r.body.byteLength));
  });

const recordSoup = fc
  .array(
    fc.oneof(
      { weight: 5, arbitrary: record },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }).map((b) => b.fill(0)) },
    ),
    {
      maxLength: 8,
    },
  )
  .map((parts) => Uint8Array.from(parts.flatMap((p) => [...p])));

/** `entries` as packCpio takes them. */
function asEntries(entries: readonly FuzzCpioEntry[]): CpioEntry[] {
  return entries as unknown as CpioEntry[];
}

/** Archives written by packCpio, several back to back with NUL padding between them, newc or crc. */
const archives = fc.tuple(
  fc.array(fc.tuple(cpioEntries, fc.constantFrom('newc' as const, 'crc' as const), fc.nat(8)), {
    minLength: 1,
    maxLength: 3,
  }),
);

async function pack(members: [FuzzCpioEntry[], 'newc' | 'crc', number][]): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (const [entries, format, padding] of members) {
    parts.push(await concatStream(packCpio(asEntries(entries), { format })));
    parts.push(new Uint8Array(padding * 4));
  }
  return concatStream(parts);
}

const bodies = fc.constantFrom('all' as const, 'some' as const, 'none' as const);

describe('readCpio under fuzzing', () => {
  it(
    'arbitrary bytes end cleanly or fail with a catalogued IRB_CPIO code',
    async () => {
      await runFuzz(
        'cpio: arbitrary bytes',
        fc.tuple(fc.uint8Array({ maxLength: 600 }), chunkSizes, bodies),
        async ([bytes, sizes, read]) => {
          await onlyIrbErrors(() => readAll(bytes, sizes, read));
        },
        { runs: 200 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'newc records with lying sizes, names and magics end cleanly or fail with an IRB_CPIO code',
    async () => {
      await runFuzz(
        'cpio: record soup',
        fc.tuple(recordSoup, chunkSizes, bodies),
        async ([bytes, sizes, read]) => {
          await onlyIrbErrors(() => readAll(bytes, sizes, read));
        },
        { runs: 400 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'mutated multi-member archives end cleanly or fail with an IRB_CPIO code',
    async () => {
      await runFuzz(
        'cpio: mutated archives',
        fc.tuple(archives, byteEdits, chunkSizes, bodies),
        async ([[members], edits, sizes, read]) => {
          const bytes = applyEdits(await pack(members), edits);
          await onlyIrbErrors(() => readAll(bytes, sizes, read));
        },
        { runs: 300 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'what packCpio writes reads back entry for entry, bodies and hard links included',
    async () => {
      await runFuzz(
        'cpio: pack/read round-trip',
        fc.tuple(archives, chunkSizes),
        async ([[members], sizes]) => {
          const { entries } = await readAll(await pack(members), sizes, 'all');
          const expected = members.flatMap(([list], member) =>
            cpioRecordsOf(list).map((record) => ({ ...record, member })),
          );
          expect(entries).toEqual(expected);
        },
        { runs: 150 },
      );
    },
    fuzzTestTimeout(),
  );
});
