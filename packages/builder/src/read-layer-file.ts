import { Readable } from 'node:stream';
import { decompress } from '@irb/compress';
import type { Layer } from '@irb/registry';
import { extract } from 'tar-stream';

/** Files read this way are small config files; anything larger is not what we look for. */
const MAX_BYTES = 4 * 1024 * 1024;

function normalize(name: string): string {
  return name.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');
}

/**
 * Reads a small regular file (e.g. `/etc/passwd`) of the final root filesystem from the layers:
 * the topmost layer whose tar has it as a regular file wins. The caller knows from the rootfs
 * index that the file exists in the result, so a whiteout above that layer cannot apply.
 * Returns `undefined` when no layer holds it as a plain file (e.g. only as a hard link).
 */
export async function readLayerFile(
  layers: readonly Layer[],
  path: string,
  options: { signal?: AbortSignal } = {},
): Promise<Uint8Array | undefined> {
  const want = normalize(path);
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i]!;
    const bytes = await scan(layer, want, options.signal);
    if (bytes) return bytes;
  }
  return undefined;
}

async function scan(layer: Layer, want: string, signal?: AbortSignal): Promise<Uint8Array | undefined> {
  const source = Readable.from(
    decompress(layer.open(signal ? { signal } : {}), {
      mediaType: layer.mediaType,
      label: layer.digest,
      ...(signal ? { signal } : {}),
    }),
  );
  const tar = extract();
  source.pipe(tar);
  source.on('error', (error) => tar.destroy(error));
  let found: Uint8Array | undefined;
  try {
    for await (const entry of tar) {
      const name = normalize(entry.header.name);
      if (name === want && entry.header.type === 'file' && (entry.header.size ?? 0) <= MAX_BYTES) {
        const parts: Uint8Array[] = [];
        for await (const chunk of entry) parts.push(chunk as Uint8Array);
        found = Buffer.concat(parts);
        // A later member of the same layer may replace it again; keep reading this layer.
      } else {
        entry.resume();
      }
    }
  } finally {
    source.destroy();
    tar.destroy();
  }
  return found;
}
