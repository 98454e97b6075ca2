#!/usr/bin/env node
/**
 * Peak memory of @irb/layers on large synthetic layers:
 * `node --conditions=@irb/source bench/memory.ts [--gib N] [--files N] [--synthetic BYTES|0]`.
 *
 * Each plain-tar scenario writes one layer to a temp file (streamed, never held in memory); the
 * last scenario is the cached synthetic gzip image of @irb/test-utils. Each runs in a fresh
 * child process: `indexLayers` over it, then `entries()` piped through
 * `packCpio` into a hash (every body byte read). Prints a markdown table with the peak RSS
 * (getrusage maxrss) of that child, the heap after indexing, and the times. Measured, never
 * asserted.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { packCpio } from '@irb/cpio';
import { encodeTarHeader, ensureSyntheticImage } from '@irb/test-utils';
import { indexLayers, type LayerSource } from '../src/index.ts';

const enc = new TextEncoder();

interface Scenario {
  name: string;
  files: number;
  fileSize: number;
}

async function writeLayer(path: string, scenario: Scenario): Promise<void> {
  const out = createWriteStream(path);
  const write = (chunk: Uint8Array) =>
    new Promise<void>((resolve, reject) => out.write(chunk, (error) => (error ? reject(error) : resolve())));
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 1), Buffer.alloc(16, 2));
  const block = new Uint8Array(1 << 20);
  const dirs = Math.max(1, Math.floor(scenario.files / 1000));
  for (let d = 0; d < dirs; d++) {
    await write(
      encodeTarHeader({
        name: enc.encode(`data/d${d}/`),
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 1,
        typeflag: '5',
      }),
    );
  }
  for (let i = 0; i < scenario.files; i++) {
    const name = enc.encode(`data/d${i % dirs}/file-${i}`);
    await write(
      encodeTarHeader({
        name,
        mode: 0o644,
        uid: i % 7,
        gid: 0,
        size: scenario.fileSize,
        mtime: 1,
        typeflag: '0',
      }),
    );
    let left = scenario.fileSize;
    while (left > 0) {
      const n = Math.min(left, block.byteLength);
      await write(new Uint8Array(cipher.update(block.subarray(0, n))));
      left -= n;
    }
    const pad = (512 - (scenario.fileSize % 512)) % 512;
    if (pad) await write(new Uint8Array(pad));
  }
  await write(new Uint8Array(1024));
  await new Promise<void>((resolve) => out.end(resolve));
}

/** The layers of an OCI layout image, read from its blob files. */
async function layoutLayers(dir: string, tag: string): Promise<LayerSource[]> {
  const blob = (digest: string) => join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
  const found = index.manifests.find(
    (m: { annotations?: Record<string, string> }) =>
      m.annotations?.['org.opencontainers.image.ref.name'] === tag,
  );
  const manifest = JSON.parse(await readFile(blob(found.digest), 'utf8'));
  return manifest.layers.map((d: { digest: string; mediaType: string; size: number }) => ({
    digest: d.digest,
    mediaType: d.mediaType,
    size: d.size,
    open: () => createReadStream(blob(d.digest), { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>,
  }));
}

/** Child mode: index + emit one plain layer file (or an OCI layout `DIR:TAG`), print JSON measurements. */
async function measure(target: string): Promise<void> {
  let layers: LayerSource[];
  if (target.includes(':')) {
    const [dir, tag] = target.split(':') as [string, string];
    layers = await layoutLayers(dir, tag);
  } else {
    const size = (await stat(target)).size;
    layers = [
      {
        digest: `sha256:${'0'.repeat(64)}`,
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        size,
        open: () => createReadStream(target, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>,
      },
    ];
  }
  const t0 = performance.now();
  const rootfs = await indexLayers(layers);
  const t1 = performance.now();
  globalThis.gc?.();
  const heapAfterIndex = process.memoryUsage().heapUsed;
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of packCpio(rootfs.entries())) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  const t2 = performance.now();
  console.log(
    JSON.stringify({
      blobBytes: layers.reduce((n, layer) => n + layer.size, 0),
      cpioBytes: bytes,
      entries: rootfs.stats.entries,
      indexMs: t1 - t0,
      emitMs: t2 - t1,
      heapAfterIndex,
      maxRssKiB: process.resourceUsage().maxRSS,
    }),
  );
}

interface Measured {
  blobBytes: number;
  cpioBytes: number;
  entries: number;
  indexMs: number;
  emitMs: number;
  heapAfterIndex: number;
  maxRssKiB: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      gib: { type: 'string', default: '2' },
      files: { type: 'string', default: '200000' },
      synthetic: { type: 'string', default: '1000000000' },
      measure: { type: 'string' },
    },
  });
  if (values.measure) {
    await measure(values.measure);
    return;
  }
  const gib = Number(values.gib);
  const scenarios: Scenario[] = [
    { name: 'baseline: 1 file of 1 KiB', files: 1, fileSize: 1024 },
    { name: `${gib} GiB in 256 large files`, files: 256, fileSize: Math.floor((gib * 2 ** 30) / 256) },
    { name: `${values.files} small files (1 KiB)`, files: Number(values.files), fileSize: 1024 },
  ];
  const self = fileURLToPath(import.meta.url);
  const child = (target: string): Measured =>
    JSON.parse(
      execFileSync(process.execPath, ['--expose-gc', '--conditions=@irb/source', self, '--measure', target], {
        encoding: 'utf8',
        maxBuffer: 1 << 20,
      })
        .trim()
        .split('\n')
        .pop() as string,
    );
  const mib = (n: number) => (n / 2 ** 20).toFixed(0);
  const row = (name: string, m: Measured) =>
    `| ${name} | ${mib(m.blobBytes)} | ${mib(m.cpioBytes)} | ${m.entries} | ${(m.indexMs / 1000).toFixed(1)} | ${(m.emitMs / 1000).toFixed(1)} | ${mib(m.heapAfterIndex)} | ${mib(m.maxRssKiB * 1024)} |`;
  const rows: string[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'irb-layers-bench-'));
  try {
    for (const scenario of scenarios) {
      const path = join(dir, 'layer.tar');
      await writeLayer(path, scenario);
      rows.push(row(`plain tar: ${scenario.name}`, child(path)));
      await rm(path);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (Number(values.synthetic) > 0) {
    const image = await ensureSyntheticImage({ sizeBytes: Number(values.synthetic) });
    rows.push(
      row(
        `gzip image: ${image.layers} layers, ${image.files} files`,
        child(`${image.layoutDir}:${image.tag}`),
      ),
    );
  }
  console.log(`Node ${process.version}, blobs on local disk, entries() through packCpio into sha256\n`);
  console.log(
    '| scenario | blobs MiB | cpio MiB | entries | index s | emit s | heap after index MiB | peak RSS MiB |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const line of rows) console.log(line);
}

await main();
