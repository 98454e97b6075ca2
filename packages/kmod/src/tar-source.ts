import { ByteReader } from '@irb/compress';
import { IrbError } from '@irb/errors';
import {
  TarFormatError,
  type TarInput,
  type TarMemberHeader,
  TarMembers,
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

function corrupt(label: string, offset: number, what: string, cause?: unknown): IrbError {
  return new IrbError(
    'IRB_KMOD_SOURCE_INVALID',
    `${label}: ${what} at tar offset ${offset}; the archive is damaged or not a tar — fetch it again`,
    cause === undefined ? undefined : { cause },
  );
}

/** The stream as @irb/tar's member iterator reads it. */
function tarInput(reader: ByteReader): TarInput {
  return {
    get offset() {
      return reader.position;
    },
    read: (length) => reader.read(length),
    async skip(length) {
      let left = length;
      while (left > 0) {
        const chunk = await reader.next();
        if (chunk === undefined) break;
        if (chunk.length > left) reader.unshift(chunk.subarray(left));
        left -= Math.min(left, chunk.length);
      }
      return length - left;
    },
  };
}

/**
 * The regular files of an uncompressed tar stream, in order, each offered to `wanted`; the
 * content of wanted ones comes with them and must be read before the next. Members come from
 * `@irb/tar`'s iterator (PAX and GNU long names folded in); names that are not UTF-8 are passed
 * over (no module tree has them), and so are links and special files.
 */
export async function* tarFiles(
  source: AsyncIterable<Uint8Array>,
  label: string,
  wanted: (file: ModuleSourceFile) => boolean,
  signal?: AbortSignal,
): AsyncGenerator<ModuleSourceBody> {
  const reader = new ByteReader(source);
  const members = new TarMembers(tarInput(reader));
  try {
    for (;;) {
      signal?.throwIfAborted();
      let member: TarMemberHeader | undefined;
      try {
        member = await members.next();
      } catch (error) {
        if (!(error instanceof TarFormatError)) throw error;
        const what = error.truncated ? 'the archive ends inside a member' : error.problem;
        throw corrupt(label, error.offset ?? reader.position, what, error);
      }
      // A tar without its end-of-archive blocks is accepted, as GNU tar accepts it.
      if (!member) return;
      const isFile = member.type === 'file' && member.header.typeflag !== TYPEFLAG.gnuSparse;
      const name = isFile ? utf8OrUndefined(member.name) : undefined;
      const file = name === undefined ? undefined : { path: canonicalSourcePath(name), size: member.size };
      if (!file || !wanted(file)) continue;
      // What the consumer leaves of the body, the iterator skips.
      let left = member.stored;
      const body = async function* () {
        while (left > 0) {
          const chunk = await reader.next();
          if (chunk === undefined) throw corrupt(label, reader.position, 'the archive ends inside a member');
          if (chunk.length > left) reader.unshift(chunk.subarray(left));
          const take = chunk.subarray(0, Math.min(left, chunk.length));
          left -= take.length;
          yield take;
        }
      };
      yield { ...file, body: body() };
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
