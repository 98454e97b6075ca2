/*
 * Times the index pass alone on an OCI layout (default: the Debian + python3 fixture),
 * serial (concurrency 1), parallel (default concurrency) and from a warm index cache,
 * interleaved, median of the runs.
 *   node --conditions=@irb/source bench/index-pass.ts [oci:DIR:TAG] [runs]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openImage } from '@irb/registry';
import { createDirectoryIndexCache, indexLayers } from '../src/index.ts';

const ref =
  process.argv[2] ||
  `oci:${join(homedir(), '.cache/irb/fixtures/debian-bookworm-python3-v1/oci')}:bookworm-python3`;
const runs = Number(process.argv[3] ?? 5);
const image = await openImage(ref);
const layers = await image.layers();
const cacheDir = await mkdtemp(join(tmpdir(), 'irb-index-bench-'));
const indexCache = createDirectoryIndexCache(cacheDir);
await indexLayers(layers, { indexCache });
const times: Record<string, number[]> = { serial: [], parallel: [], cached: [] };
for (let i = 0; i < runs; i++) {
  for (const [name, options] of [
    ['serial', { concurrency: 1 }],
    ['parallel', {}],
    ['cached', { indexCache }],
  ] as const) {
    const start = performance.now();
    const rootfs = await indexLayers(layers, options);
    (times[name] as number[]).push(performance.now() - start);
    if (i === 0) console.log(name, rootfs.stats.entries, 'entries');
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
for (const [name, xs] of Object.entries(times))
  console.log(`${name}: median ${median(xs).toFixed(0)} ms of ${xs.map((x) => x.toFixed(0)).join(' ')}`);
await rm(cacheDir, { recursive: true, force: true });
