import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pack as createPack } from 'tar-stream';
import { buildOnce, logFixture } from './fixture-cache.ts';

/**
 * A large synthetic OCI image for memory and throughput measurements: several gzip layers of
 * incompressible, text-like and highly repetitive files, generated deterministically from a seed
 * (AES-CTR keystream) and streamed straight to disk, never held whole in memory.
 */

const SYNTHETIC_FIXTURE_VERSION = 'v1';
const TAG = 'synthetic';
const MTIME = new Date(1_700_000_000 * 1000);
const CHUNK = 1 << 20;

/** Options of {@link ensureSyntheticImage}. */
export interface SyntheticImageOptions {
  /** Approximate total size of the file contents, across all layers. */
  sizeBytes: number;
  /** PRNG seed. Default 1. */
  seed?: number;
  /** Number of content layers (a small busybox layer comes first). Default 4. */
  layers?: number;
  /** Cache root. Default `fixtureCacheRoot()`. */
  cacheDir?: string;
  signal?: AbortSignal;
}

/** The cached synthetic image. */
export interface SyntheticImage {
  /** OCI image layout directory. */
  layoutDir: string;
  /** Tag inside the layout. */
  tag: string;
  /** `oci:<layoutDir>:<tag>`. */
  ref: string;
  /** Exact total of file content bytes. */
  contentBytes: number;
  /** Number of regular files. */
  files: number;
  /** Number of layers, including the busybox layer. */
  layers: number;
}

/** mulberry32: tiny, fast, good enough to pick sizes and kinds deterministically. Returns [0, 1). */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = 'random' | 'text' | 'lines';

const TEXT_ALPHABET = new TextEncoder().encode('etaoinshrdlucm \n');
const ZEROS = new Uint8Array(CHUNK);

/** Streams `size` bytes of one kind; the same seed and path always give the same bytes. */
function* fileContent(seed: number, path: string, kind: Kind, size: number): Generator<Uint8Array> {
  const keyMaterial = createHash('sha256').update(`${seed}:${path}`).digest();
  const cipher = createCipheriv('aes-128-ctr', keyMaterial.subarray(0, 16), keyMaterial.subarray(16, 32));
  let template: Uint8Array | undefined;
  if (kind === 'lines') {
    let text = '';
    for (let line = 0; text.length < CHUNK; line++) {
      text += `${path} line ${line}: the quick brown fox jumps over the lazy dog, status=ok\n`;
    }
    template = new TextEncoder().encode(text).subarray(0, CHUNK);
  }
  for (let offset = 0; offset < size; offset += CHUNK) {
    const length = Math.min(CHUNK, size - offset);
    const random = new Uint8Array(cipher.update(ZEROS.subarray(0, length)));
    if (kind === 'random') {
      yield random;
    } else if (kind === 'text') {
      for (let i = 0; i < length; i++) random[i] = TEXT_ALPHABET[random[i]! & 15]!;
      yield random;
    } else {
      const out = template!.slice(0, length);
      // A few random bytes per chunk so it is repetitive, not constant.
      for (let i = 0; i + 8 <= length; i += 4096) out.set(random.subarray(i, i + 8), i);
      yield out;
    }
  }
}

interface FileSpec {
  path: string;
  size: number;
  kind: Kind;
}

/** Plans one layer: many small files, some medium ones, a few large ones. */
function planLayer(random: () => number, layer: number, budget: number): FileSpec[] {
  const files: FileSpec[] = [];
  const kinds: Kind[] = ['random', 'random', 'text', 'text', 'lines'];
  const pickKind = () => kinds[Math.floor(random() * kinds.length)]!;
  let used = 0;
  const add = (dir: string, size: number) => {
    const index = files.length;
    files.push({
      path: `data/layer${layer}/${dir}/f${String(index).padStart(5, '0')}`,
      size,
      kind: pickKind(),
    });
    used += size;
  };
  for (let i = 0; i < 600 && used < budget * 0.05; i++)
    add(`small/d${i % 20}`, 256 + Math.floor(random() * 16384));
  while (used < budget * 0.4)
    add('medium', Math.min(65536 + Math.floor(random() * 4 * 1048576), budget - used));
  while (used < budget)
    add('large', Math.min(16 * 1048576 + Math.floor(random() * 48 * 1048576), budget - used));
  return files.filter((file) => file.size > 0);
}

/** Digests of a written layer blob. */
export interface LayerDigests {
  digest: string;
  diffId: string;
  size: number;
}

/** Writes one gzip layer blob (pigz, deterministic: no name, no time) from tar bytes and returns its digests. */
export async function writeGzipLayer(
  blobsDir: string,
  tar: AsyncIterable<Uint8Array>,
): Promise<LayerDigests> {
  const tmpPath = join(blobsDir, `.layer-${process.pid}-${Date.now()}`);
  const pigz = spawn('pigz', ['-1', '-n', '-T', '-c'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const diff = createHash('sha256');
  const compressed = createHash('sha256');
  let size = 0;
  const out = createWriteStream(tmpPath);
  const sink = (async () => {
    for await (const chunk of pigz.stdout as AsyncIterable<Buffer>) {
      compressed.update(chunk);
      size += chunk.byteLength;
      if (!out.write(chunk)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
  })();
  const exit = once(pigz, 'close');
  for await (const chunk of tar) {
    diff.update(chunk);
    if (!pigz.stdin.write(chunk)) await once(pigz.stdin, 'drain');
  }
  pigz.stdin.end();
  const [code] = (await exit) as [number | null];
  await sink;
  if (code !== 0) throw new Error(`pigz exited with ${code} while writing a synthetic layer`);
  const digest = compressed.digest('hex');
  await rename(tmpPath, join(blobsDir, digest));
  return { digest: `sha256:${digest}`, diffId: `sha256:${diff.digest('hex')}`, size };
}

/** Writes one gzip layer whose tar `fill` writes through tar-stream's packer. */
async function writeLayer(blobsDir: string, fill: (pack: Pack) => Promise<void>): Promise<LayerDigests> {
  const pack = createPack();
  const filled = fill(pack).then(
    () => pack.finalize(),
    (error: unknown) => {
      pack.destroy(error as Error);
      throw error;
    },
  );
  const [digests] = await Promise.all([writeGzipLayer(blobsDir, pack as AsyncIterable<Uint8Array>), filled]);
  return digests;
}

type Pack = ReturnType<typeof createPack>;

/** Writes the config, manifest and `index.json` (tagged {@link TAG}) of an amd64 image with these gzip layers. */
export async function writeImageLayout(
  layout: string,
  layers: readonly LayerDigests[],
  containerConfig: Record<string, unknown>,
): Promise<void> {
  const blobsDir = join(layout, 'blobs', 'sha256');
  const config = new TextEncoder().encode(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: containerConfig,
      rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) },
      history: layers.map((_, i) => ({ created_by: `synthetic layer ${i}` })),
    }),
  );
  const configBlob = await writeBlob(blobsDir, config);
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configBlob },
      layers: layers.map((layer) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: layer.digest,
        size: layer.size,
      })),
    }),
  );
  const manifestBlob = await writeBlob(blobsDir, manifest);
  await writeFile(
    join(layout, 'index.json'),
    `${JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifestBlob,
          annotations: { 'org.opencontainers.image.ref.name': TAG },
        },
      ],
    })}\n`,
  );
}

async function addEntry(
  pack: Pack,
  header: Parameters<Pack['entry']>[0],
  body?: Iterable<Uint8Array>,
): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    // tar-stream's entries are streamx writables; only write/end/drain are used.
    const entry = pack.entry(header, (error?: Error | null) =>
      error ? reject(error) : resolve(),
    ) as unknown as NodeJS.WritableStream;
    if (!body) return;
    (async () => {
      for (const chunk of body) {
        if (!entry.write(chunk)) await once(entry, 'drain');
      }
      entry.end();
    })().catch(reject);
  });
}

function sha256Of(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function writeBlob(blobsDir: string, bytes: Uint8Array): Promise<{ digest: string; size: number }> {
  const digest = sha256Of(bytes);
  await writeFile(join(blobsDir, digest.slice(7)), bytes);
  return { digest, size: bytes.byteLength };
}

/**
 * Builds (once, cached) and returns a synthetic OCI layout of about `sizeBytes` of file
 * content: a busybox layer (so the image has a shell) then `layers` content layers.
 * 1 GB takes well under a minute on two cores (pigz -1 does the compressing).
 */
export async function ensureSyntheticImage(options: SyntheticImageOptions): Promise<SyntheticImage> {
  const seed = options.seed ?? 1;
  const layerCount = options.layers ?? 4;
  if (!(options.sizeBytes > 0)) throw new Error('ensureSyntheticImage: sizeBytes must be a positive number');
  const key = `synthetic-${options.sizeBytes}-s${seed}-l${layerCount}-${SYNTHETIC_FIXTURE_VERSION}`;
  return layoutFixture(key, options, async (layout, blobsDir) => {
    const random = prng(seed);
    const layers: LayerDigests[] = [];
    const busybox = await readFile('/bin/busybox').catch(() => {
      throw new Error('ensureSyntheticImage needs /bin/busybox (Debian package busybox-static)');
    });
    layers.push(
      await writeLayer(blobsDir, async (pack) => {
        for (const name of ['bin/', 'data/', 'etc/', 'tmp/']) {
          await addEntry(pack, {
            name,
            type: 'directory',
            mode: name === 'tmp/' ? 0o1777 : 0o755,
            mtime: MTIME,
          });
        }
        await addEntry(pack, { name: 'bin/busybox', size: busybox.byteLength, mode: 0o755, mtime: MTIME }, [
          busybox,
        ]);
        await addEntry(pack, { name: 'bin/sh', type: 'symlink', linkname: 'busybox', mtime: MTIME });
      }),
    );
    let contentBytes = 0;
    let fileCount = 0;
    const budget = Math.ceil(options.sizeBytes / layerCount);
    for (let layer = 1; layer <= layerCount; layer++) {
      options.signal?.throwIfAborted();
      const files = planLayer(random, layer, budget);
      const started = Date.now();
      layers.push(
        await writeLayer(blobsDir, async (pack) => {
          const dirs = new Set<string>();
          for (const file of files) {
            const parts = file.path.split('/');
            for (let i = 1; i < parts.length; i++) {
              const dirName = `${parts.slice(0, i).join('/')}/`;
              if (dirs.has(dirName)) continue;
              dirs.add(dirName);
              await addEntry(pack, { name: dirName, type: 'directory', mode: 0o755, mtime: MTIME });
            }
            await addEntry(
              pack,
              { name: file.path, size: file.size, mode: 0o644, mtime: MTIME },
              fileContent(seed, file.path, file.kind, file.size),
            );
            contentBytes += file.size;
            fileCount++;
          }
        }),
      );
      logFixture(
        `${key}: layer ${layer}/${layerCount} (${files.length} files) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
    }
    await writeImageLayout(layout, layers, {
      Env: ['PATH=/bin'],
      Cmd: ['/bin/sh', '-c', 'echo irb-synthetic-ok'],
    });
    return { contentBytes, files: fileCount, layers: layers.length };
  });
}

/** What a fixture layout's `fixture.json` records. */
export interface FixtureCounts {
  contentBytes: number;
  files: number;
  layers: number;
}

/**
 * Builds (once, cached under `key`) an OCI layout fixture tagged {@link TAG}: `fill` writes its
 * blobs, config, manifest and index into `layout` and returns the counts kept beside it.
 */
export async function layoutFixture(
  key: string,
  options: { cacheDir?: string; signal?: AbortSignal },
  fill: (layout: string, blobsDir: string) => Promise<FixtureCounts>,
): Promise<SyntheticImage> {
  const dir = await buildOnce(
    key,
    async (tmp) => {
      const layout = join(tmp, 'oci');
      const blobsDir = join(layout, 'blobs', 'sha256');
      await mkdir(blobsDir, { recursive: true });
      await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}\n');
      const counts = await fill(layout, blobsDir);
      await writeFile(join(tmp, 'fixture.json'), `${JSON.stringify(counts)}\n`);
    },
    {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
    },
  );
  const info = JSON.parse(await readFile(join(dir, 'fixture.json'), 'utf8')) as FixtureCounts;
  const layoutDir = join(dir, 'oci');
  return { layoutDir, tag: TAG, ref: `oci:${layoutDir}:${TAG}`, ...info };
}
