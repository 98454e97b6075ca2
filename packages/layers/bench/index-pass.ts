/*
 * Times the index pass alone on an OCI layout (default: the Debian + python3 fixture),
 * serial (concurrency 1), parallel (default concurrency), both again without the diff_id check
 * (layers without a diffId: what hashing each uncompressed tar costs), and from a warm index
 * cache, interleaved, median of the runs.
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
const unchecked = layers.map((l) => ({
  digest: l.digest,
  mediaType: l.mediaType,
  size: l.size,
  open: (options?: { signal?: AbortSignal }) => l.open(options),
}));
const cacheDir = await mkdtemp(join(tmpdir(), 'irb-index-bench-'));
const indexCache = createDirectoryIndexCache(cacheDir);
await indexLayers(layers, { indexCache });
const times: Record<string, number[]> = {
  serial: [],
  'serial unchecked': [],
  parallel: [],
  'parallel unchecked': [],
  cached: [],
};
const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(times).map((k) => [k, []]));
for (let i = 0; i < runs; i++) {
  for (const [name, source, options] of [
    ['serial', layers, { concurrency: 1 }],
    ['serial unchecked', unchecked, { concurrency: 1 }],
    ['parallel', layers, {}],
    ['parallel unchecked', unchecked, {}],
    ['cached', layers, { indexCache }],
  ] as const) {
    const start = performance.now();
    const used = process.cpuUsage();
    const rootfs = await indexLayers(source, options);
    const { user, system } = process.cpuUsage(used);
    (cpu[name] as number[]).push((user + system) / 1000);
    (times[name] as number[]).push(performance.now() - start);
    if (i === 0) console.log(name, rootfs.stats.entries, 'entries');
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
for (const [name, xs] of Object.entries(times)) {
  const runs = xs.map((x) => x.toFixed(0)).join(' ');
  console.log(
    `${name}: median ${median(xs).toFixed(0)} ms (CPU ${median(cpu[name] ?? []).toFixed(0)} ms) of ${runs}`,
  );
}
await rm(cacheDir, { recursive: true, force: true });
