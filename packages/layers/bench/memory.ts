#!/usr/bin/env node
/**
 * Peak memory of @irb/layers on large synthetic layers: `node bench/memory.ts [--gib N] [--files N]`.
 *
 * Each scenario writes one plain tar layer to a temp file (streamed, never held in memory),
 * then runs in a fresh child process: `indexLayers` over it, then `entries()` piped through
 * `packCpio` into a hash (every body byte read). Prints a markdown table with the peak RSS
 * (getrusage maxrss) of that child, the heap after indexing, and the times. Measured, never
 * asserted.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { packCpio } from '@irb/cpio';
import { encodeTarHeader } from '@irb/test-utils';
import { indexLayers } from '../src/index.ts';

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

/** Child mode: index + emit one layer file, print JSON measurements. */
async function measure(path: string): Promise<void> {
  const size = (await stat(path)).size;
  const layer = {
    digest: `sha256:${'0'.repeat(64)}`,
    mediaType: 'application/vnd.oci.image.layer.v1.tar',
    size,
    open: () => createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>,
  };
  const t0 = performance.now();
  const rootfs = await indexLayers([layer]);
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
      tarBytes: size,
      cpioBytes: bytes,
      entries: rootfs.stats.entries,
      indexMs: t1 - t0,
      emitMs: t2 - t1,
      heapAfterIndex,
      maxRssKiB: process.resourceUsage().maxRSS,
    }),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      gib: { type: 'string', default: '2' },
      files: { type: 'string', default: '200000' },
      measure: { type: 'string' },
    },
  });
  if (values.measure) {
    await measure(values.measure);
    return;
  }
  const gib = Number(values.gib);
  const scenarios: Scenario[] = [
    { name: `${gib} GiB in 256 large files`, files: 256, fileSize: Math.floor((gib * 2 ** 30) / 256) },
    { name: `${values.files} small files (1 KiB)`, files: Number(values.files), fileSize: 1024 },
    { name: 'baseline: 1 file of 1 KiB', files: 1, fileSize: 1024 },
  ];
  const dir = await mkdtemp(join(tmpdir(), 'irb-layers-bench-'));
  const self = fileURLToPath(import.meta.url);
  const rows: string[] = [];
  try {
    for (const scenario of scenarios) {
      const path = join(dir, 'layer.tar');
      await writeLayer(path, scenario);
      const out = execFileSync(
        process.execPath,
        ['--expose-gc', '--conditions=@irb/source', self, '--measure', path],
        {
          encoding: 'utf8',
          maxBuffer: 1 << 20,
        },
      );
      const m = JSON.parse(out.trim().split('\n').pop() as string);
      const mib = (n: number) => (n / 2 ** 20).toFixed(0);
      rows.push(
        `| ${scenario.name} | ${mib(m.tarBytes)} | ${m.entries} | ${(m.indexMs / 1000).toFixed(1)} | ${(m.emitMs / 1000).toFixed(1)} | ${mib(m.heapAfterIndex)} | ${mib(m.maxRssKiB * 1024)} |`,
      );
      await rm(path);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log(`Node ${process.version}, plain tar layer on local disk, cpio through packCpio into sha256\n`);
  console.log('| scenario | tar MiB | entries | index s | emit s | heap after index MiB | peak RSS MiB |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
}

await main();
