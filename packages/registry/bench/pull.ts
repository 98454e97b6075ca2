#!/usr/bin/env node
/**
 * Pull benchmark against a local distribution registry: irb cold (1 and 4 parallel blobs),
 * irb warm (cache hit), and `skopeo copy` to an OCI layout as the baseline. Prints a markdown
 * table. Measured, never asserted.
 *
 * Usage: node --conditions=@irb/source bench/pull.ts [--layers N] [--layer-mib M] [--runs R]
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { buildImage, buildTar, pushImage, startRegistry } from '../../test-utils/src/index.ts';
import { createRegistryClient } from '../src/index.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    layers: { type: 'string', default: '4' },
    'layer-mib': { type: 'string', default: '32' },
    runs: { type: 'string', default: '3' },
  },
});
const layerCount = Number(values.layers);
const layerBytes = Number(values['layer-mib']) * 1024 * 1024;
const runs = Number(values.runs);

const registry = await startRegistry();
const tars = await Promise.all(
  Array.from({ length: layerCount }, (_, i) =>
    buildTar([{ type: 'file', path: `layer${i}.bin`, content: new Uint8Array(randomBytes(layerBytes)) }]),
  ),
);
const image = buildImage({ layers: tars, compression: 'none' });
await pushImage(registry, 'bench/app', 'v1', image);
const total = image.layers.reduce((n, l) => n + l.size, 0);
const ref = `${registry.host}/bench/app:v1`;

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 20);

async function irbPull(cacheDir: string, concurrency: number): Promise<void> {
  const client = createRegistryClient({ cacheDir, concurrency });
  try {
    const img = await client.image(ref);
    await img.prefetch();
    for (const layer of await img.layers()) for await (const _ of layer.open()) void _;
  } finally {
    await client.close();
  }
}

async function time(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const rows: Array<[string, number[]]> = [];
async function measure(label: string, prepare: () => Promise<string>, body: (dir: string) => Promise<void>) {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const dir = await prepare();
    try {
      times.push(await time(() => body(dir)));
    } finally {
      if (!label.includes('warm')) await rm(dir, { recursive: true, force: true });
    }
  }
  rows.push([label, times]);
}

const fresh = () => mkdtemp(join(tmpdir(), 'irb-bench-'));
try {
  await measure('irb cold, concurrency 1 (download + verify + read back)', fresh, (d) => irbPull(d, 1));
  await measure('irb cold, concurrency 4', fresh, (d) => irbPull(d, 4));
  const warmDir = await fresh();
  await irbPull(warmDir, 4);
  await measure(
    'irb warm cache (HEAD + verified read)',
    async () => warmDir,
    (d) => irbPull(d, 4),
  );
  await rm(warmDir, { recursive: true, force: true });
  await measure('skopeo copy docker:// → oci: (baseline)', fresh, async (d) => {
    await run('skopeo', [
      'copy',
      '--quiet',
      '--src-tls-verify=false',
      `docker://${ref}`,
      `oci:${join(d, 'layout')}:v1`,
    ]);
  });
} finally {
  clearInterval(sampler);
  await registry.stop();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
console.log(
  `\n${layerCount} layers × ${values['layer-mib']} MiB (uncompressed blobs, ${(total / 2 ** 20).toFixed(0)} MiB), ${runs} runs, median\n`,
);
console.log('| pull | seconds | MiB/s |');
console.log('| --- | ---: | ---: |');
for (const [label, times] of rows) {
  const t = median(times);
  console.log(`| ${label} | ${t.toFixed(2)} | ${(total / 2 ** 20 / t).toFixed(0)} |`);
}
console.log(
  `\nirb process peak RSS: ${(peakRss / 2 ** 20).toFixed(0)} MiB (includes the ${(total / 2 ** 20).toFixed(0)} MiB test image held in memory for pushing)`,
);
