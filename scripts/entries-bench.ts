#!/usr/bin/env node
/**
 * `pnpm bench:entries`: what an image of very many entries costs a whole `irb build` — peak RSS,
 * bytes per entry and wall time — at 100 000, 1 000 000 and 4 000 000 tar members (the
 * many-entries fixture of @irb/test-utils: one gzip layer, mostly empty and tiny files, a symlink
 * and a hard link every 100 entries). Each build is cold (a fresh cache directory), in its own
 * process, timed by GNU time; bytes per entry are the peak RSS above a 1 000-entry build's,
 * divided by the entries. Prints a markdown table. Measured, never asserted.
 *
 * Usage: pnpm bench:entries [--entries 100000,1000000,4000000] [--compression zstd|gzip|lz4|none]
 *                           [--cli PATH/TO/bin.ts]
 *
 * `--cli` runs another checkout's CLI from source (a before/after comparison); the fixture images
 * are built once and cached like every fixture.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureManyEntriesImage } from '../packages/test-utils/src/index.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BASELINE = 1000;

interface Measured {
  entries: number;
  rssKiB: number;
  seconds: number;
  sha256: string;
  error?: string;
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** One cold `irb build` of the image, under GNU time. */
async function build(cli: string, ref: string, entries: number, compression: string): Promise<Measured> {
  const dir = await mkdtemp(join(tmpdir(), 'irb-entries-bench-'));
  try {
    const output = join(
      dir,
      `out.cpio${compression === 'none' ? '' : `.${compression === 'gzip' ? 'gz' : compression === 'zstd' ? 'zst' : 'lz4'}`}`,
    );
    const timing = join(dir, 'time');
    const args = [
      '-f',
      '%e %M',
      '-o',
      timing,
      process.execPath,
      '--conditions=@irb/source',
      cli,
      'build',
      ref,
    ];
    args.push('-o', output, '-c', compression, '--cache-dir', join(dir, 'cache'), '--quiet');
    const stderr: Buffer[] = [];
    const code = await new Promise<number | null>((done, fail) => {
      const child = spawn('/usr/bin/time', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      child.on('error', fail);
      child.on('close', done);
    });
    const [seconds, rss] = (await readFile(timing, 'utf8')).trim().split('\n').pop()?.split(' ') ?? [];
    const measured = { entries, rssKiB: Number(rss), seconds: Number(seconds) };
    if (code !== 0) {
      const text = Buffer.concat(stderr).toString('utf8').trim().split('\n');
      return {
        ...measured,
        sha256: '',
        error: `exit ${code}: ${text.find((l) => l.startsWith('irb:')) ?? text[0] ?? ''}`,
      };
    }
    return { ...measured, sha256: await sha256(output) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      entries: { type: 'string', default: '100000,1000000,4000000' },
      compression: { type: 'string', default: 'zstd' },
      cli: { type: 'string', default: join(ROOT, 'apps/cli/src/bin.ts') },
    },
  });
  const sizes = values.entries.split(',').map(Number);
  if (!sizes.every((n) => Number.isInteger(n) && n >= BASELINE)) {
    throw new Error(`--entries: whole numbers of at least ${BASELINE}, comma-separated`);
  }
  const cli = resolve(values.cli);
  const run = async (entries: number) => {
    const image = await ensureManyEntriesImage({ entries });
    const measured = await build(cli, image.ref, entries, values.compression);
    process.stderr.write(
      `bench: ${entries} entries: ${measured.error ?? `${measured.rssKiB} KiB, ${measured.seconds} s`}\n`,
    );
    return measured;
  };
  const baseline = await run(BASELINE);
  const rows: Measured[] = [];
  for (const entries of sizes) rows.push(await run(entries));
  const mib = (kib: number) => (kib / 1024).toFixed(0);
  console.log(
    `Node ${process.version}, irb build -c ${values.compression}, cold, ${cli.replace(`${ROOT}/`, '')}\n`,
  );
  console.log('| entries | peak RSS MiB | bytes per entry | wall s | output sha256 |');
  console.log('|---:|---:|---:|---:|---|');
  console.log(
    `| ${BASELINE} (baseline) | ${mib(baseline.rssKiB)} | | ${baseline.seconds.toFixed(1)} | ${baseline.sha256.slice(0, 12)} |`,
  );
  for (const row of rows) {
    const perEntry = ((row.rssKiB - baseline.rssKiB) * 1024) / (row.entries - BASELINE);
    const result = row.error ? `failed: ${row.error}` : row.sha256.slice(0, 12);
    console.log(
      `| ${row.entries} | ${mib(row.rssKiB)} | ${perEntry.toFixed(0)} | ${row.seconds.toFixed(1)} | ${result} |`,
    );
  }
}

await main();
