/*
 * Times the index pass alone on an OCI layout (default: the Debian + python3 fixture),
 * serial (concurrency 1) against parallel, interleaved, median of the runs.
 *   node --conditions=@irb/source bench/index-pass.ts [oci:DIR:TAG] [runs]
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { openImage } from '@irb/registry';
import { indexLayers } from '../src/index.ts';

const ref =
  process.argv[2] ||
  `oci:${join(homedir(), '.cache/irb/fixtures/debian-bookworm-python3-v1/oci')}:bookworm-python3`;
const runs = Number(process.argv[3] ?? 5);
const image = await openImage(ref);
const layers = await image.layers();
const times: Record<string, number[]> = { serial: [], parallel: [] };
for (let i = 0; i < runs; i++) {
  for (const [name, concurrency] of [
    ['serial', 1],
    ['parallel', undefined],
  ] as const) {
    const start = performance.now();
    const rootfs = await indexLayers(layers, concurrency ? { concurrency } : {});
    (times[name] as number[]).push(performance.now() - start);
    if (i === 0) console.log(name, rootfs.stats.entries, 'entries');
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
for (const [name, xs] of Object.entries(times))
  console.log(`${name}: median ${median(xs).toFixed(0)} ms of ${xs.map((x) => x.toFixed(0)).join(' ')}`);
