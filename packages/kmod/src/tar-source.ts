import { ByteReader } from '@irb/compress';
import { IrbError } from '@irb/errors';
import {
  BLOCK_SIZE,
  checksumOk,
  decodeHeader,
  entryTypeOf,
  isZeroBlock,
  paddingOf,
  parsePax,
  paxInteger,
  TarFormatError,
  TYPEFLAG,
  utf8OrUndefined,
} from '@irb/tar';
import { decompressAny } from './bytes.ts';
import {
  canonicalSourcePath,
  type ModuleSource,
  type ModuleSourceBody,
  type ModuleSourceFile,
} from './source.ts';

/** Largest PAX or GNU long-name record read; real ones are a few hundred bytes. */
const MAX_META = 1024 * 1024;

function corrupt(label: string, offset: number, what: string, cause?: unknown): IrbError {
  return new IrbError(
    'IRB_KMOD_SOURCE_INVALID',
    `${label}: ${what} at tar offset ${offset}; the archive is damaged or not a tar — fetch it again`,
    cause === undefined ? undefined : { cause },
  );
}

async function skip(reader: ByteReader, n: number, label: string): Promise<void> {
  let left = n;
  while (left > 0) {
    const chunk = await reader.next();
    if (chunk === undefined) throw corrupt(label, reader.position, 'the archive ends inside a member');
    if (chunk.length > left) {
      reader.unshift(chunk.subarray(left));
      left = 0;
    } else left -= chunk.length;
  }
}

async function exactly(reader: ByteReader, n: number, label: string): Promise<Uint8Array> {
  const bytes = await reader.read(n);
  if (bytes.length < n) throw corrupt(label, reader.position, 'the archive ends inside a member');
  return bytes;
}

/**
 * The regular files of an uncompressed tar stream, in order, each offered to `wanted`; the
 * content of wanted ones comes with them and must be read before the next. PAX `path`/`size`
 * and GNU long names are applied; names that are not UTF-8 are passed over (no module tree
 * has them), and so are links and special files.
 */
export async function* tarFiles(
  source: AsyncIterable<Uint8Array>,
  label: string,
  wanted: (file: ModuleSourceFile) => boolean,
  signal?: AbortSignal,
): AsyncGenerator<ModuleSourceBody> {
  const reader = new ByteReader(source);
  try {
    let longName: Uint8Array | undefined;
    let pax: { path?: Uint8Array; size?: number } = {};
    for (;;) {
      signal?.throwIfAborted();
      const offset = reader.position;
      const block = await reader.read(BLOCK_SIZE);
      // A tar without its end-of-archive blocks is accepted, as GNU tar accepts it.
      if (block.length === 0) return;
      if (block.length < BLOCK_SIZE) throw corrupt(label, offset, 'the archive ends inside a header');
      if (isZeroBlock(block)) return;
      if (!checksumOk(block)) throw corrupt(label, offset, 'bad header checksum');
      let header: ReturnType<typeof decodeHeader>;
      try {
        header = decodeHeader(block);
      } catch (error) {
        if (error instanceof TarFormatError) throw corrupt(label, offset, error.problem, error);
        throw error;
      }
      const { typeflag } = header;
      if (typeflag === TYPEFLAG.pax || typeflag === TYPEFLAG.gnuLongName) {
        if (header.size > MAX_META) throw corrupt(label, offset, 'an extension record is too large');
        const data = await exactly(reader, header.size, label);
        await skip(reader, paddingOf(header.size), label);
        if (typeflag === TYPEFLAG.gnuLongName) {
          const nul = data.indexOf(0);
          longName = nul < 0 ? data : data.subarray(0, nul);
        } else {
          try {
            for (const { key, value } of parsePax(data)) {
              if (key === 'path') pax.path = value;
              else if (key === 'size') pax.size = paxInteger(value, key);
            }
          } catch (error) {
            if (error instanceof TarFormatError) throw corrupt(label, offset, error.problem, error);
            throw error;
          }
        }
        continue;
      }
      const size = pax.size ?? header.size;
      const nameBytes = pax.path ?? longName ?? header.name;
      longName = undefined;
      pax = {};
      // Extension records of other kinds (global PAX, long link names, volume labels) and
      // everything that is not a regular file carry no module: their data is passed over.
      const isFile = entryTypeOf(typeflag, nameBytes) === 'file' && typeflag !== TYPEFLAG.gnuSparse;
      const name = isFile ? utf8OrUndefined(nameBytes) : undefined;
      const file = name === undefined ? undefined : { path: canonicalSourcePath(name), size };
      if (file && wanted(file)) {
        let left = size;
        const body = async function* () {
          while (left > 0) {
            const chunk = await reader.next();
            if (chunk === undefined)
              throw corrupt(label, reader.position, 'the archive ends inside a member');
            const take = chunk.length > left ? chunk.subarray(0, left) : chunk;
            if (chunk.length > left) reader.unshift(chunk.subarray(left));
            left -= take.length;
            yield take;
          }
        };
        yield { ...file, body: body() };
        await skip(reader, left + paddingOf(size), label);
      } else {
        await skip(reader, size + paddingOf(size), label);
      }
    }
  } finally {
    await reader.close();
  }
}

/** Options of {@link tarModuleSource}. */
export interface TarModuleSourceOptions {
  /** Opens the tar (plain, gzip, zstd, lz4 or xz: found from its first bytes), anew for each pass. */
  open: (signal?: AbortSignal) => AsyncIterable<Uint8Array>;
  /** Names the tar in messages, e.g. `kernel.tar` of an image. */
  label: string;
  /** A directory inside the tar that is the root (`rootfs` for `rootfs/lib/modules/…`). */
  root?: string;
}

/**
 * A module source read from a tar stream: LinuxKit's `kernel.tar` (`lib/modules/<release>/…`),
 * a layer, a tar of a root filesystem. Every pass reads the stream from its start; there is
 * no `read`, so whoever resolves modules from it reads every module on the first pass.
 */
export function tarModuleSource(options: TarModuleSourceOptions): ModuleSource {
  const root = options.root === undefined ? '' : `${canonicalSourcePath(options.root).replace(/\/+$/, '')}/`;
  return {
    label: options.label,
    async *files(wanted, signal) {
      const stream = decompressAny(options.open(signal), options.label, signal);
      const inRoot = (file: ModuleSourceFile): ModuleSourceFile | undefined =>
        root === ''
          ? file
          : file.path.startsWith(root)
            ? { path: canonicalSourcePath(file.path.slice(root.length)), size: file.size }
            : undefined;
      for await (const file of tarFiles(
        stream,
        options.label,
        (f) => {
          const mapped = inRoot(f);
          return mapped !== undefined && wanted(mapped);
        },
        signal,
      )) {
        yield { ...file, ...inRoot(file) };
      }
    },
  };
}
