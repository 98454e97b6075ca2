import { logFixture } from './fixture-cache.ts';
import { layoutFixture, type SyntheticImage, writeGzipLayer, writeImageLayout } from './synthetic-image.ts';
import { encodeTarHeader } from './tar.ts';

/*
 * An image of very many small entries, for measuring memory per entry (issue: a million entries
 * must build in bounded memory): one gzip layer of directories of 1000 entries each, mostly empty
 * and tiny files, with a symlink and a hard link every 100 entries. Tar headers are written by
 * hand and streamed through pigz, so four million entries take about a minute, not the hour
 * tar-stream would.
 */

const MANY_FIXTURE_VERSION = 'v1';
const PER_DIR = 1000;
const MTIME = 1_700_000_000;
const enc = new TextEncoder();

/** Options of {@link ensureManyEntriesImage}. */
export interface ManyEntriesImageOptions {
  /** Tar members of the layer (directories included), at least 1000. */
  entries: number;
  /** Cache root. Default `fixtureCacheRoot()`. */
  cacheDir?: string;
  signal?: AbortSignal;
}

/** The cached image of many entries: `files` counts regular files, `layers` is 1. */
export type ManyEntriesImage = SyntheticImage;

/**
 * The tar of a many-entries layer with `entries` members, in 1 MiB chunks, generated as it is
 * read (four million members are 2 GiB of tar that never sit in memory); `counts` receives the
 * number of regular files and their bytes.
 */
export function* manyEntriesTar(
  entries: number,
  counts: { files: number; contentBytes: number } = { files: 0, contentBytes: 0 },
): Generator<Uint8Array> {
  const out = new Uint8Array(1 << 20);
  let at = 0;
  const flush = function* (): Generator<Uint8Array> {
    if (at > 0) yield out.slice(0, at);
    at = 0;
  };
  const put = function* (bytes: Uint8Array): Generator<Uint8Array> {
    if (at + bytes.byteLength > out.byteLength) yield* flush();
    out.set(bytes, at);
    at += bytes.byteLength;
  };
  const header = (name: string, typeflag: string, size = 0, linkname?: string) =>
    encodeTarHeader({
      name: enc.encode(name),
      mode: typeflag === '5' ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      size,
      mtime: MTIME,
      typeflag,
      ...(linkname !== undefined ? { linkname: enc.encode(linkname) } : {}),
    });
  yield* put(header('data/', '5'));
  let written = 1;
  for (let d = 0; written < entries; d++) {
    const dir = `data/p${String(d).padStart(5, '0')}`;
    yield* put(header(`${dir}/`, '5'));
    written++;
    for (let i = 0; i < PER_DIR - 1 && written < entries; i++, written++) {
      const name = `${dir}/f${String(i).padStart(4, '0')}.txt`;
      if (i % 100 === 50)
        yield* put(header(`${dir}/l${i}`, '2', 0, `f${String(i - 1).padStart(4, '0')}.txt`));
      else if (i % 100 === 99) yield* put(header(`${dir}/h${i}`, '1', 0, `${dir}/f0000.txt`));
      else if (i % 4 !== 0) {
        yield* put(header(name, '0'));
        counts.files++;
      } else {
        const body = enc.encode(`${d}:${i}\n`);
        yield* put(header(name, '0', body.byteLength));
        const padded = new Uint8Array(512);
        padded.set(body);
        yield* put(padded);
        counts.files++;
        counts.contentBytes += body.byteLength;
      }
    }
  }
  yield* put(new Uint8Array(1024));
  yield* flush();
}

async function* chunked(source: Iterable<Uint8Array>, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  for (const chunk of source) {
    signal?.throwIfAborted();
    yield chunk;
  }
}

/**
 * Builds (once, cached) and returns an OCI layout whose one gzip layer holds `entries` tar
 * members: what a build must hold in memory per path, with almost no file bodies.
 */
export async function ensureManyEntriesImage(options: ManyEntriesImageOptions): Promise<ManyEntriesImage> {
  const entries = Math.floor(options.entries);
  if (!(entries >= PER_DIR)) throw new Error('ensureManyEntriesImage: entries must be at least 1000');
  const key = `many-entries-${entries}-${MANY_FIXTURE_VERSION}`;
  return layoutFixture(key, options, async (layout, blobsDir) => {
    const counts = { files: 0, contentBytes: 0 };
    const started = Date.now();
    const layer = await writeGzipLayer(blobsDir, chunked(manyEntriesTar(entries, counts), options.signal));
    logFixture(`${key}: layer in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await writeImageLayout(layout, [layer], { Cmd: ['/data/p00000/f0000.txt'] });
    return { ...counts, layers: 1 };
  });
}
