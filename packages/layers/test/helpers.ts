import { createHash } from 'node:crypto';
import type { CpioEntry, CpioPath } from '@irb/cpio';
import { buildTar, type TarSpec } from '@irb/test-utils';
import { type IndexLayersOptions, indexLayers, type LayerSource, type Rootfs } from '../src/index.ts';

/** Media types of OCI layers. */
export const MEDIA = {
  tar: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  docker: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  unknown: 'application/octet-stream',
} as const;

/** A layer whose blob is `bytes`, handed out in `chunkSize` pieces to exercise chunk boundaries. */
export function layerOf(
  bytes: Uint8Array,
  mediaType: string = MEDIA.tar,
  chunkSize = 1000,
): LayerSource & {
  opens: number;
} {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const layer = {
    digest,
    mediaType,
    size: bytes.byteLength,
    opens: 0,
    open(): AsyncIterable<Uint8Array> {
      layer.opens++;
      return (async function* () {
        for (let i = 0; i < bytes.byteLength; i += chunkSize) yield bytes.slice(i, i + chunkSize);
      })();
    },
  };
  return layer;
}

/** One emitted record: the entry and, for files, the body bytes. */
export interface Emitted {
  entry: CpioEntry;
  path: string;
  body?: Buffer;
}

/** Text form of a path: UTF-8 decoded, or `bytes:<hex>` for names that are not UTF-8. */
export function pathText(path: CpioPath): string {
  return typeof path === 'string' ? path : `bytes:${Buffer.from(path).toString('hex')}`;
}

/** Drains `entries()`, reading every body, and checks the invariants every output must keep. */
export async function emit(rootfs: Rootfs): Promise<Emitted[]> {
  const out: Emitted[] = [];
  const seen = new Set<string>();
  for await (const entry of rootfs.entries()) {
    const item: Emitted = { entry, path: pathText(entry.path) };
    if (entry.type === 'file') {
      const chunks: Buffer[] = [];
      const body = entry.body;
      if (body instanceof Uint8Array) chunks.push(Buffer.from(body));
      else if (body) {
        const iterable = typeof body === 'function' ? body() : body;
        for await (const chunk of iterable) chunks.push(Buffer.from(chunk));
      }
      item.body = Buffer.concat(chunks);
      if (item.body.byteLength !== entry.size)
        throw new Error(`body of ${item.path} has ${item.body.byteLength} bytes, size says ${entry.size}`);
    }
    out.push(item);
    const names = [entry.path, ...(entry.type === 'file' ? (entry.links ?? []) : [])];
    for (const name of names) {
      const text = Buffer.from(typeof name === 'string' ? Buffer.from(name) : name).toString('latin1');
      if (seen.has(text)) throw new Error(`${text} emitted twice`);
      if (text !== '.') {
        const parts = text.split('/');
        if (text.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
          throw new Error(`${text} is not a clean path inside the root`);
        }
        if (parts.some((p) => p.startsWith('.wh.')))
          throw new Error(`whiteout marker ${text} reached the output`);
        const parent = parts.slice(0, -1).join('/') || '.';
        if (!seen.has(parent)) throw new Error(`${text} comes before its parent ${parent}`);
      }
      seen.add(text);
    }
  }
  return out;
}

/** Emitted records by every name (hard-link names map to their group's record). */
export function byPath(emitted: Emitted[]): Map<string, Emitted> {
  const map = new Map<string, Emitted>();
  for (const item of emitted) {
    map.set(item.path, item);
    if (item.entry.type === 'file') for (const link of item.entry.links ?? []) map.set(pathText(link), item);
  }
  return map;
}

/** A file of a test layer, with `content` (text) and other fields of its tar header. */
export const f = (path: string, content = '', extra: Partial<TarSpec> = {}): TarSpec =>
  ({ type: 'file', path, content, ...extra }) as TarSpec;
/** A directory of a test layer. */
export const d = (path: string, extra: Partial<TarSpec> = {}): TarSpec =>
  ({ type: 'directory', path, ...extra }) as TarSpec;
/** A symlink of a test layer. */
export const sl = (path: string, target: string): TarSpec => ({ type: 'symlink', path, target });
/** A hard link of a test layer, to `target` (a path of the same layer tar). */
export const hl = (path: string, target: string): TarSpec => ({ type: 'link', path, target });

/** The rootfs of layers built from `layers` (one tar per list, base first). */
export async function build(layers: TarSpec[][], options?: IndexLayersOptions): Promise<Rootfs> {
  const blobs = await Promise.all(layers.map((specs) => buildTar(specs)));
  return indexLayers(
    blobs.map((blob) => layerOf(blob)),
    options,
  );
}
