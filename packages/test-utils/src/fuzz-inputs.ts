import fc from 'fast-check';
import type { TarSpec } from './tar.ts';

/*
 * Inputs for the fuzz properties: damage done to valid bytes, and valid tar layers with every
 * kind of member irb reads (PAX and GNU long names, GNU sparse files, hard links, whiteouts).
 */

/** One edit of {@link applyEdits}. */
export type ByteEdit =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'cut'; at: number }
  | { kind: 'splice'; from: number; to: number; length: number }
  | { kind: 'number'; at: number; text: string };

/** Digit runs written over a spot: the values size, mode and length fields break on. */
const NUMBERS = [
  '7777777777',
  '77777777777',
  '-1',
  '0',
  '99999999999',
  '4294967295',
  '18446744073709551616',
  '\x80\xff\xff\xff\xff\xff\xff\xff',
  '\xff',
  'FFFFFFFF',
  '00000000',
];

/** Edits the way a fuzzer damages a file: flip, set or insert bytes, cut the end, splice a run elsewhere, write a number over a spot. */
export const byteEdits: fc.Arbitrary<ByteEdit[]> = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ maxLength: 16 }),
    }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({
      kind: fc.constant('splice' as const),
      from: fc.nat(),
      to: fc.nat(),
      length: fc.integer({ min: 1, max: 1024 }),
    }),
    fc.record({ kind: fc.constant('number' as const), at: fc.nat(), text: fc.constantFrom(...NUMBERS) }),
  ),
  { minLength: 1, maxLength: 4 },
);

/** Byte arrays (or lists of bytes) one after the other. */
export function joined(...parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** `bytes` with `edits` applied in order (a new array; positions wrap around the current length). */
export function applyEdits(bytes: Uint8Array, edits: readonly ByteEdit[]): Uint8Array {
  let out: Uint8Array = bytes.slice();
  for (const e of edits) {
    const n = out.byteLength;
    if (e.kind === 'insert') {
      const at = e.at % (n + 1);
      out = joined(out.subarray(0, at), e.bytes, out.subarray(at));
      continue;
    }
    if (n === 0) continue;
    if (e.kind === 'flip') out[e.at % n] = (out[e.at % n] as number) ^ (1 << e.bit);
    else if (e.kind === 'set') out[e.at % n] = e.value;
    else if (e.kind === 'cut') out = out.slice(0, e.at % n);
    else if (e.kind === 'number') {
      const text = Uint8Array.from(e.text, (c) => c.charCodeAt(0));
      out.set(text.subarray(0, n - (e.at % n)), e.at % n);
    } else {
      const run = out.slice(e.from % n, (e.from % n) + e.length);
      const at = e.to % n;
      out = joined(out.subarray(0, at), run, out.subarray(at));
    }
  }
  return out;
}

/** Chunk sizes for a stream: mostly one chunk, sometimes tiny or odd ones that cut every record. */
export const chunkSizes: fc.Arbitrary<readonly number[]> = fc.oneof(
  { weight: 3, arbitrary: fc.constant([1 << 20]) },
  { weight: 1, arbitrary: fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 8 }) },
);

/** `bytes` as an async stream of chunks of the given sizes (cycled). Each chunk is a fresh copy. */
export async function* chunked(
  bytes: Uint8Array,
  sizes: readonly number[] = [bytes.byteLength],
): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let i = 0; at < bytes.byteLength; i++) {
    const size = Math.max(1, sizes[i % sizes.length] ?? bytes.byteLength);
    yield bytes.slice(at, at + size);
    at += size;
  }
}

const encoder = new TextEncoder();

/** A path component: mostly plain, sometimes a dot name, a whiteout, or bytes that are not UTF-8. */
const component: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[a-z0-9_-]{1,12}$/).map((s) => encoder.encode(s)) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('.', '..', '.wh..wh..opq', '.wh.a', '.wh.b', 'a', 'b')
      .map((s) => encoder.encode(s)),
  },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ minLength: 1, maxLength: 8 })
      .map((b) => b.map((x) => (x === 0 || x === 0x2f ? 0x78 : x))),
  },
  { weight: 1, arbitrary: fc.integer({ min: 90, max: 260 }).map((n) => encoder.encode('l'.repeat(n))) },
);

/** A member name: components joined by `/`, sometimes absolute or with a trailing slash. */
export const tarName: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.constantFrom('', '', '', './', '/'),
    fc.array(component, { minLength: 1, maxLength: 5 }),
    fc.constantFrom('', '', '', '/'),
  )
  .map(([lead, parts, tail]) => {
    const body = parts.flatMap((p, i) => (i === 0 ? [...p] : [0x2f, ...p]));
    return joined(encoder.encode(lead), body, encoder.encode(tail));
  });

const common = fc.record(
  {
    mode: fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 0o7777 })),
    uid: fc.oneof(fc.constant(0), fc.nat(70_000), fc.constant(3_000_000)),
    gid: fc.oneof(fc.constant(0), fc.nat(70_000)),
    mtime: fc.oneof(fc.constant(0), fc.nat(0x7fff_ffff), fc.constant(2 ** 34)),
    longNames: fc.constantFrom('pax' as const, 'gnu' as const),
    xattrs: fc.option(
      fc.dictionary(fc.constantFrom('user.a', 'security.capability'), fc.string({ maxLength: 8 })),
      {
        nil: undefined,
      },
    ),
  },
  { requiredKeys: ['longNames'] },
);

/** One member spec; links and hard links point at names drawn the same way (some exist, some do not). */
const memberSpec: fc.Arbitrary<TarSpec> = fc
  .tuple(
    tarName,
    common,
    fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          type: fc.constant('file' as const),
          content: fc.uint8Array({ maxLength: 1500 }),
        }),
      },
      { weight: 3, arbitrary: fc.record({ type: fc.constant('directory' as const) }) },
      { weight: 2, arbitrary: fc.record({ type: fc.constant('symlink' as const), target: tarName }) },
      { weight: 2, arbitrary: fc.record({ type: fc.constant('link' as const), target: tarName }) },
      {
        weight: 1,
        arbitrary: fc.record({
          type: fc.constantFrom('char' as const, 'block' as const),
          major: fc.nat(4095),
          minor: fc.nat(1 << 20),
        }),
      },
      { weight: 1, arbitrary: fc.record({ type: fc.constant('fifo' as const) }) },
      {
        weight: 1,
        arbitrary: fc
          .array(
            fc.record({ hole: fc.nat(1 << 16), data: fc.uint8Array({ minLength: 1, maxLength: 600 }) }),
            {
              maxLength: 7,
            },
          )
          .chain((chunks) => {
            let offset = 0;
            const placed = chunks.map(({ hole, data }) => {
              offset += hole;
              const chunk = { offset, data };
              offset += data.byteLength;
              return chunk;
            });
            return fc
              .nat(1 << 16)
              .map((tail) => ({ type: 'sparse' as const, size: offset + tail, chunks: placed }));
          }),
      },
    ),
  )
  .map(([path, extra, kind]) => {
    const spec = { ...extra, ...kind, path };
    for (const key of Object.keys(spec) as (keyof typeof spec)[])
      if (spec[key] === undefined) delete spec[key];
    return spec as TarSpec;
  });

/** A layer's members: mostly ordinary trees, with every extension GNU tar and Docker write. */
export const tarSpecs: fc.Arbitrary<TarSpec[]> = fc.array(memberSpec, { minLength: 0, maxLength: 12 });

/** A cpio path the writer takes: relative, no empty or `..` component, any other bytes. */
const cpioPath: fc.Arbitrary<Uint8Array> = fc
  .array(
    fc.oneof(
      { weight: 6, arbitrary: fc.stringMatching(/^[a-z0-9_.-]{1,12}$/).map((s) => encoder.encode(s)) },
      {
        weight: 1,
        arbitrary: fc
          .uint8Array({ minLength: 1, maxLength: 8 })
          .map((b) => b.map((x) => (x === 0 || x === 0x2f ? 0x79 : x))),
      },
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((parts) => joined(...parts.flatMap((p, i) => (i === 0 ? [p] : [[0x2f], p]))))
  .filter(
    (path) =>
      !path.some(
        (_, i) =>
          path[i] === 0x2e &&
          path[i + 1] === 0x2e &&
          (i === 0 || path[i - 1] === 0x2f) &&
          (i + 2 === path.length || path[i + 2] === 0x2f),
      ),
  );

/** One entry for `packCpio` of `@irb/cpio` (structurally typed, so this package needs no dependency on it). */
export interface FuzzCpioEntry {
  type: 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
  path: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size?: number;
  body?: Uint8Array;
  links?: Uint8Array[];
  target?: Uint8Array;
  rdevMajor?: number;
  rdevMinor?: number;
}

/** Entries of a cpio archive: files (some with hard links), directories, symlinks, devices, FIFOs, sockets. */
export const cpioEntries: fc.Arbitrary<FuzzCpioEntry[]> = fc.array(
  fc
    .tuple(
      cpioPath,
      fc.record({
        mode: fc.nat(0o7777),
        uid: fc.oneof(fc.constant(0), fc.nat()),
        gid: fc.nat(70_000),
        mtime: fc.nat(),
      }),
      fc.oneof(
        fc.record({
          type: fc.constant('file' as const),
          body: fc.uint8Array({ maxLength: 1200 }),
          links: fc.array(cpioPath, { maxLength: 2 }),
        }),
        fc.record({ type: fc.constant('directory' as const) }),
        fc.record({ type: fc.constant('symlink' as const), target: cpioPath }),
        fc.record({
          type: fc.constantFrom('char' as const, 'block' as const),
          rdevMajor: fc.nat(4095),
          rdevMinor: fc.nat((1 << 20) - 1),
        }),
        fc.record({ type: fc.constantFrom('fifo' as const, 'socket' as const) }),
      ),
    )
    .map(([path, base, kind]): FuzzCpioEntry => {
      const entry: FuzzCpioEntry = { ...base, ...kind, path };
      if (entry.body) entry.size = entry.body.byteLength;
      if (entry.links?.length === 0) delete entry.links;
      return entry;
    }),
  { maxLength: 10 },
);

/** One record as a cpio reader gives it back: name, kind, and the bytes stored with it. */
export interface CpioRecordSeen {
  name: Uint8Array;
  type: string;
  data: Uint8Array;
}

/**
 * The records packCpio writes for `entries`, as a reader gives them back: a file with links is
 * one record per name, its body stored once, on the last; a symlink's body is its target.
 */
export function cpioRecordsOf(entries: readonly FuzzCpioEntry[]): CpioRecordSeen[] {
  return entries.flatMap((e) => {
    const names = [e.path, ...(e.links ?? [])];
    return names.map((name, i) => ({
      name,
      type: e.type,
      data:
        e.type === 'symlink'
          ? (e.target as Uint8Array)
          : i === names.length - 1 && e.body
            ? e.body
            : new Uint8Array(0),
    }));
  });
}
