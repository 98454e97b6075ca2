import { buildTar } from '@irb/test-utils';
import { applyEdits, byteEdits, fuzzTestTimeout, runFuzz, tarSpecs } from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { memoryInput } from '../test/blocks.ts';
import { TarFormatError } from './errors.ts';
import { BLOCK_SIZE, FIELDS } from './header.ts';
import { MAX_EXTENSION_SIZE, TarMembers } from './members.ts';

/*
 * TarMembers over hostile bytes: it ends or throws a TarFormatError (a one-line problem, which
 * the layer reader turns into IRB_LAYER_CORRUPT / IRB_LAYER_TRUNCATED), never anything else, and
 * what it hands out stays within the input. Over valid tars it gives back what was written.
 */

interface Walked {
  names: Uint8Array[];
  error?: TarFormatError;
}

/** Walks every member, reading `take` of each one's data (a fraction), checking each member's bounds. */
async function walk(tar: Uint8Array, chunk: number, take: number): Promise<Walked> {
  const input = memoryInput(tar, chunk);
  const members = new TarMembers(input);
  const names: Uint8Array[] = [];
  let previous = -1;
  try {
    for (let m = await members.next(); m; m = await members.next()) {
      names.push(m.name.slice());
      if (names.length > tar.byteLength / BLOCK_SIZE) throw new Error('more members than blocks');
      if (m.name.includes(0) || m.linkname.includes(0)) throw new Error('a name with a NUL byte');
      if (m.name.byteLength > MAX_EXTENSION_SIZE || m.linkname.byteLength > MAX_EXTENSION_SIZE) {
        throw new Error('a name longer than any record');
      }
      if (!(m.offset > previous && m.offset <= m.headerOffset)) throw new Error('offsets out of order');
      if (m.dataOffset !== m.headerOffset + BLOCK_SIZE * (1 + m.sparseExtensions.length)) {
        throw new Error('data offset is not after the header and its extension blocks');
      }
      if (m.dataOffset > tar.byteLength) throw new Error('data offset past the input');
      if (!Number.isSafeInteger(m.size) || m.size < 0 || m.stored < 0 || m.stored > m.size) {
        throw new Error(`size ${m.size} / stored ${m.stored} out of range`);
      }
      previous = m.headerOffset;
      const want = Math.floor(m.stored * take);
      if (want > 0) {
        const data = await input.read(want);
        if (data.byteLength > want) throw new Error('read more than asked');
      }
    }
    return { names };
  } catch (error) {
    if (!(error instanceof TarFormatError)) throw error;
    if (/[\r\n]/.test(error.message) || error.problem === '')
      throw new Error(`message not one line: ${error.message}`);
    return { names, error };
  }
}

/** A 512-byte block with random fields, a plausible typeflag and magic, and a correct checksum. */
const headerBlock = fc
  .tuple(
    fc.uint8Array({ minLength: BLOCK_SIZE, maxLength: BLOCK_SIZE }),
    fc.constantFrom(...'0125673456xgLKVSD\0'.split('')),
    fc.constantFrom('ustar\x0000', 'ustar  \0', 'garbage!'),
    fc.oneof(fc.nat(4096), fc.constant(MAX_EXTENSION_SIZE + 1), fc.constant(2 ** 40)),
    fc.boolean(),
  )
  .map(([random, typeflag, magic, size, octalSize]) => {
    const block = random.slice();
    block[FIELDS.typeflag.offset] = typeflag.charCodeAt(0);
    block.set(
      Uint8Array.from(magic, (c) => c.charCodeAt(0)),
      FIELDS.magic.offset,
    );
    if (octalSize) {
      const text = `${size.toString(8).padStart(11, '0')}\0`;
      block.set(
        Uint8Array.from(text, (c) => c.charCodeAt(0)),
        FIELDS.size.offset,
      );
    }
    block.fill(0x20, 148, 156);
    let sum = 0;
    for (const byte of block) sum += byte;
    block.set(
      Uint8Array.from(`${sum.toString(8).padStart(6, '0')}\0 `, (c) => c.charCodeAt(0)),
      148,
    );
    return block;
  });

/** PAX data blocks: records with plausible and hostile lengths, keys and values. */
const paxBlock = fc
  .array(
    fc.tuple(
      fc.constantFrom('path', 'linkpath', 'size', 'uid', 'mtime', 'GNU.sparse.name', 'x', ''),
      fc.uint8Array({ maxLength: 40 }),
      fc.integer({ min: -3, max: 3 }),
    ),
    { maxLength: 4 },
  )
  .map((records) => {
    const parts = records.map(([key, value, skew]) => {
      const body = [...new TextEncoder().encode(` ${key}=`), ...value, 0x0a];
      const length = body.length + String(body.length).length + skew;
      return [...new TextEncoder().encode(String(length)), ...body];
    });
    const data = Uint8Array.from(parts.flat());
    const block = new Uint8Array(Math.ceil(data.byteLength / BLOCK_SIZE) * BLOCK_SIZE || BLOCK_SIZE);
    block.set(data);
    return block;
  });

/** A tar made of blocks: random headers with valid checksums, PAX data, random data and zero blocks. */
const blockSoup = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: headerBlock },
      { weight: 2, arbitrary: paxBlock },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: BLOCK_SIZE, maxLength: BLOCK_SIZE }) },
      { weight: 1, arbitrary: fc.constant(new Uint8Array(BLOCK_SIZE)) },
    ),
    { maxLength: 10 },
  )
  .map((blocks) => {
    const out = new Uint8Array(blocks.length * BLOCK_SIZE);
    blocks.forEach((block, i) => {
      out.set(block, i * BLOCK_SIZE);
    });
    return out;
  });

const reading = fc.record({
  chunk: fc.constantFrom(1, 100, 511, 512, 4096, 1 << 20),
  take: fc.constantFrom(0, 0, 0.5, 1),
});

const decoder = new TextDecoder();

/**
 * A name as written and as read, compared: tar-stream drops the leading `/` of a name it splits
 * into the ustar prefix, and may mark a directory with a trailing `/`.
 */
function shown(name: Uint8Array): string {
  return decoder.decode(name).replace(/^\/+|\/+$/g, '');
}

describe('TarMembers under fuzzing', () => {
  it(
    'arbitrary bytes end cleanly or fail with a TarFormatError',
    async () => {
      await runFuzz(
        'tar: arbitrary bytes',
        fc.tuple(fc.uint8Array({ maxLength: 3 * BLOCK_SIZE }), reading),
        async ([bytes, { chunk, take }]) => {
          await walk(bytes, chunk, take);
        },
        { runs: 300 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'blocks with valid checksums (random fields, PAX records, GNU records, sparse maps) end cleanly or fail with a TarFormatError',
    async () => {
      await runFuzz(
        'tar: checksummed block soup',
        fc.tuple(blockSoup, reading),
        async ([bytes, { chunk, take }]) => {
          await walk(bytes, chunk, take);
        },
        { runs: 400 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'mutated real tars (PAX and GNU long names, sparse files, hard links, whiteouts) end cleanly or fail with a TarFormatError',
    async () => {
      await runFuzz(
        'tar: mutated layers',
        fc.tuple(tarSpecs, byteEdits, reading),
        async ([specs, edits, { chunk, take }]) => {
          const tar = applyEdits(await buildTar(specs), edits);
          await walk(tar, chunk, take);
        },
        { runs: 600 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'valid tars read back member for member, names exact',
    async () => {
      await runFuzz(
        'tar: valid layers round-trip',
        fc.tuple(tarSpecs, reading),
        async ([specs, { chunk, take }]) => {
          const { names, error } = await walk(await buildTar(specs), chunk, take);
          expect(error).toBeUndefined();
          expect(names.map(shown)).toEqual(specs.map((s) => shown((s as { path: Uint8Array }).path)));
        },
        { runs: 150 },
      );
    },
    fuzzTestTimeout(),
  );
});
