import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { extract } from 'tar-stream';
import type { Layer } from '../types.ts';

/** Runs a real tool (umoci, skopeo, tar) and fails the test with its stderr. */
export const run = promisify(execFile);

/** Reads a whole layer stream (verified by `open()`). */
export async function readLayer(layer: Layer): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of layer.open()) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The uncompressed tar of a layer, whatever it is stored as. */
export async function layerTar(layer: Layer): Promise<Uint8Array> {
  const bytes = await readLayer(layer);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return gunzipSync(bytes);
  if (bytes[0] === 0x28 && bytes[1] === 0xb5) return zstdDecompressSync(bytes);
  return bytes;
}

/** Member names and file contents of a tar. */
export async function tarContents(tar: Uint8Array): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const parser = extract();
  const done = (async () => {
    for await (const entry of parser) {
      const chunks: Uint8Array[] = [];
      for await (const chunk of entry) chunks.push(chunk as Uint8Array);
      out.set(entry.header.name.replace(/^\.\//, ''), Buffer.concat(chunks).toString('utf8'));
    }
  })();
  parser.end(tar);
  await done;
  return out;
}

/** `sha256:<hex>` of some bytes. */
export const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
