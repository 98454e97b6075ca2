#!/usr/bin/env node
/**
 * What a process pays to use @irb/registry before its first byte of work: importing the built
 * package, and importing it then revalidating one manifest against a local registry (what an
 * unchanged rebuild does). Each figure is the median of `--runs` fresh processes, with
 * NODE_COMPILE_CACHE set (and warmed by one unmeasured run), next to a bare `node -e 0`.
 * Prints a markdown table. Measured, never asserted.
 *
 * Usage: node --conditions=@irb/source bench/import.ts [--runs 5] [DIST_ENTRY…]
 *   DIST_ENTRY: built entries to compare (default dist/index.js; build it first with
 *   `pnpm turbo run build --filter @irb/registry...`).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { buildImage, buildTar, pushImage, startRegistry } from '../../test-utils/src/index.ts';

const run = promisify(execFile);
const { values, positionals } = parseArgs({
  options: { runs: { type: 'string', default: '5' } },
  allowPositionals: true,
});
const runs = Number(values.runs);
const here = fileURLToPath(new URL('.', import.meta.url));
const entries =
  positionals.length > 0 ? positionals.map((p) => resolve(p)) : [join(here, '../dist/index.js')];
const child = join(here, '../test/manifest-child.ts');

const cacheDir = await mkdtemp(join(tmpdir(), 'irb-bench-import-'));
const env: NodeJS.ProcessEnv = { ...process.env, NODE_COMPILE_CACHE: cacheDir };
for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) delete env[name];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Median wall time of `node ARGS` (ms), and the last run's stdout. */
async function time(args: string[]): Promise<{ ms: number; out: string }> {
  await run(process.execPath, args, { env }); // fills the compile cache
  const times: number[] = [];
  let out = '';
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    out = (await run(process.execPath, args, { env })).stdout;
    times.push(performance.now() - start);
  }
  return { ms: median(times), out };
}

/** Median of a figure a child prints about itself. */
async function reported(args: string[], pick: (out: string) => number): Promise<number> {
  await run(process.execPath, args, { env });
  const values: number[] = [];
  for (let i = 0; i < runs; i++) values.push(pick((await run(process.execPath, args, { env })).stdout));
  return median(values);
}

const registry = await startRegistry();
try {
  const image = buildImage({ layers: [await buildTar([{ type: 'file', path: 'a.txt', content: 'a' }])] });
  await pushImage(registry, 'bench/app', 'v1', image);
  const ref = `${registry.host}/bench/app:v1`;
  const bare = await time(['-e', '0']);
  console.log(
    `runs: ${runs} per figure (median), node ${process.version}, \`node -e 0\`: ${bare.ms.toFixed(0)} ms\n`,
  );
  console.log(
    '| entry | `await import` | process: import only | process: import + manifest | × `node -e 0` | undici loaded |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | --- |');
  for (const entry of entries) {
    const url = JSON.stringify(new URL(`file://${entry}`).href);
    const importMs = await reported(
      [
        '--input-type=module',
        '-e',
        `const t = performance.now(); await import(${url}); console.log(performance.now() - t)`,
      ],
      Number,
    );
    const importOnly = await time(['--input-type=module', '-e', `await import(${url})`]);
    const manifest = await time([child, entry, ref]);
    const { undici } = JSON.parse(manifest.out) as { undici: boolean };
    console.log(
      `| ${entry} | ${importMs.toFixed(1)} ms | ${importOnly.ms.toFixed(0)} ms | ${manifest.ms.toFixed(0)} ms | ${(manifest.ms / bare.ms).toFixed(1)} | ${undici ? 'yes' : 'no'} |`,
    );
  }
} finally {
  await registry.stop();
  await rm(cacheDir, { recursive: true, force: true });
}
