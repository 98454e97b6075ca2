#!/usr/bin/env node
/**
 * Remote build cache benchmark on the Debian + python3 fixture, pushed to a local distribution
 * registry: a cold build on a fresh host (empty blob cache: pull every layer, build) against a
 * cache hit on a fresh host (`cacheFrom`: the image's manifest and config, then the archive).
 * Prints a markdown table with the medians and the hit/cold ratio (target ≤ 0.4). Measured,
 * never asserted.
 *
 * Usage: node --conditions=@irb/source bench/remote-cache.ts [--runs R] [--compression gzip|zstd]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDebianPythonImage, pushOciLayout, startRegistry } from '../../test-utils/src/index.ts';
import { buildWithRemoteCache, InitramfsBuilder, type InitramfsCompression } from '../src/index.ts';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, compression: { type: 'string', default: 'gzip' } },
});
const runs = Number(values.runs);
const compression = values.compression as InitramfsCompression;

const fixture = await ensureDebianPythonImage();
const registry = await startRegistry();
const dir = await mkdtemp(join(tmpdir(), 'irb-bench-remote-'));
try {
  await pushOciLayout({
    layoutDir: fixture.layoutDir,
    tag: fixture.tag,
    registry: registry.host,
    repository: 'bench/python',
  });
  const image = `${registry.host}/bench/python:${fixture.tag}`;
  const cacheRepo = `${registry.host}/bench/irb-cache`;
  // Fill the remote cache once (not measured).
  await buildWithRemoteCache({ image, compression, cacheDir: join(dir, 'seed') }, join(dir, 'seed.out'), {
    cacheTo: cacheRepo,
  });
  const cold: number[] = [];
  const hit: number[] = [];
  for (let i = 0; i < runs; i++) {
    let start = performance.now();
    await new InitramfsBuilder({ image, compression, cacheDir: join(dir, `cold-${i}`) }).build(
      join(dir, `cold-${i}.out`),
    );
    cold.push(performance.now() - start);
    start = performance.now();
    const result = await buildWithRemoteCache(
      { image, compression, cacheDir: join(dir, `hit-${i}`) },
      join(dir, `hit-${i}.out`),
      {
        cacheFrom: cacheRepo,
      },
    );
    hit.push(performance.now() - start);
    if (result.cache !== 'hit') throw new Error('expected a cache hit');
    await rm(join(dir, `cold-${i}`), { recursive: true, force: true });
    await rm(join(dir, `hit-${i}`), { recursive: true, force: true });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const c = median(cold);
  const h = median(hit);
  console.log(`| Debian + python3, ${compression}, fresh host | median of ${runs} | ms |`);
  console.log('| --- | --- | --- |');
  console.log(
    `| cold build (pull layers + build) | ${cold.map((x) => x.toFixed(0)).join(', ')} | ${c.toFixed(0)} |`,
  );
  console.log(
    `| --cache-from hit (manifest + config + archive) | ${hit.map((x) => x.toFixed(0)).join(', ')} | ${h.toFixed(0)} |`,
  );
  console.log(`| hit / cold | | ${(h / c).toFixed(2)} (target ≤ 0.40) |`);
} finally {
  await registry.stop();
  await rm(dir, { recursive: true, force: true });
}
