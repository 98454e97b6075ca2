#!/usr/bin/env node
/**
 * Cache bookkeeping benchmark: what leases (first touch of a blob), the automatic limit's scan
 * (a prune that removes nothing) and listing cost for caches of N blobs. Prints a markdown table.
 * Measured, never asserted.
 *
 * Usage: node --conditions=@irb/source bench/cache.ts [--blobs 100,1000,5000] [--runs R]
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cacheLayout, listCache, pruneCache } from '@irb/store';
import { BlobCache } from '../src/cache.ts';

const { values } = parseArgs({
  options: { blobs: { type: 'string', default: '100,1000,5000' }, runs: { type: 'string', default: '3' } },
});
const counts = String(values.blobs).split(',').map(Number);
const runs = Number(values.runs);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

console.log(
  '| blobs | lease all (first touch), ms | lease per blob, µs | auto-limit scan (nothing removed), ms | listCache, ms |',
);
console.log('| ---: | ---: | ---: | ---: | ---: |');
for (const count of counts) {
  const dir = await mkdtemp(join(tmpdir(), 'irb-cache-bench-'));
  const digests: string[] = [];
  const blobs = join(cacheLayout(dir).blobs, 'sha256');
  await mkdir(blobs, { recursive: true });
  for (let i = 0; i < count; i++) {
    const bytes = randomBytes(64);
    const hex = createHash('sha256').update(bytes).digest('hex');
    await writeFile(join(blobs, hex), bytes);
    digests.push(`sha256:${hex}`);
  }
  const lease: number[] = [];
  const scan: number[] = [];
  const list: number[] = [];
  for (let run = 0; run < runs; run++) {
    const cache = new BlobCache(dir, { maxBytes: false });
    let t = performance.now();
    for (const digest of digests) await cache.has(digest);
    lease.push(performance.now() - t);
    await cache.dispose();
    t = performance.now();
    await pruneCache(dir, { maxBytes: Number.MAX_SAFE_INTEGER });
    scan.push(performance.now() - t);
    t = performance.now();
    await listCache(dir);
    list.push(performance.now() - t);
  }
  console.log(
    `| ${count} | ${median(lease).toFixed(1)} | ${((1000 * median(lease)) / count).toFixed(0)} | ${median(scan).toFixed(1)} | ${median(list).toFixed(1)} |`,
  );
  await rm(dir, { recursive: true, force: true });
}
