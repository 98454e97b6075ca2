import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { ByteReader } from '@irb/compress';
import { IrbError } from '@irb/errors';
import type { ModuleSource } from './source.ts';
import { tarModuleSource } from './tar-source.ts';

const AR_MAGIC = '!<arch>\n';
const AR_HEADER = 60;

function invalid(label: string, what: string): IrbError {
  return new IrbError(
    'IRB_KMOD_SOURCE_INVALID',
    `${label}: ${what}; give a kernel package (linux-image-….deb) as downloaded, e.g. by apt-get download`,
  );
}

/**
 * The `data.tar*` member of a Debian package (an ar archive): its bytes, still compressed as
 * the package has them. The members before it (debian-binary, control.tar*) are passed over.
 */
export async function* debDataTar(
  source: AsyncIterable<Uint8Array>,
  label: string,
): AsyncGenerator<Uint8Array> {
  const reader = new ByteReader(source);
  try {
    const magic = new TextDecoder().decode(await reader.read(AR_MAGIC.length));
    if (magic !== AR_MAGIC) throw invalid(label, 'not a Debian package (no ar header)');
    for (;;) {
      const header = await reader.read(AR_HEADER);
      if (header.length === 0) throw invalid(label, 'the package has no data.tar member');
      const text = new TextDecoder().decode(header);
      if (header.length < AR_HEADER || text.slice(58, 60) !== '`\n')
        throw invalid(label, 'damaged ar member header');
      const name = text.slice(0, 16).trim().replace(/\/$/, '');
      const size = Number(text.slice(48, 58).trim());
      if (!Number.isSafeInteger(size) || size < 0) throw invalid(label, `bad size of member ${name}`);
      const padded = size + (size % 2);
      if (name.startsWith('data.tar')) {
        let left = size;
        while (left > 0) {
          const chunk = await reader.next();
          if (chunk === undefined) throw invalid(label, `the package ends inside ${name}`);
          if (chunk.length > left) {
            yield chunk.subarray(0, left);
            left = 0;
          } else {
            left -= chunk.length;
            yield chunk;
          }
        }
        return;
      }
      const skipped = await reader.read(padded);
      if (skipped.length < size) throw invalid(label, `the package ends inside ${name}`);
    }
  } finally {
    await reader.close();
  }
}

/** A file's bytes; a file that cannot be opened is the source's error, not a bare errno. */
async function* readFileOf(path: string): AsyncGenerator<Uint8Array> {
  try {
    yield* createReadStream(path, { highWaterMark: 256 * 1024 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === undefined || !/^E[A-Z]+$/.test(code)) throw error;
    throw new IrbError(
      'IRB_KMOD_SOURCE_INVALID',
      `${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}; give the path of a kernel .deb`,
      { cause: error },
    );
  }
}

/** Options of {@link debModuleSource} for a package that is not a file on disk. */
export interface DebModuleSourceOptions {
  /** Opens the .deb's bytes, anew for each pass. */
  open: (signal?: AbortSignal) => AsyncIterable<Uint8Array>;
  /** Names the package in messages. */
  label: string;
}

/**
 * A kernel `.deb` (linux-image-…, linux-modules-…) as a module source: its data.tar (xz,
 * zstd, gzip or plain) read as a stream. Such a package ships no modules.dep (its postinst runs
 * depmod); module dependencies then come from each module's `.modinfo`.
 */
export function debModuleSource(deb: string | DebModuleSourceOptions): ModuleSource {
  const { open, label } =
    typeof deb === 'string' ? { open: () => readFileOf(deb), label: basename(deb) } : deb;
  return tarModuleSource({ label, open: (signal) => debDataTar(open(signal), label) });
}
