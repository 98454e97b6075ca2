// Prints a table of compression throughput and ratio: irb's gzip and zstd against pigz,
// gzip(1) and zstd(1) over the same input. Not a test; run it with
//   node --conditions=@irb/source packages/compress/scripts/bench-compress.ts [MiB] [file]
// The default input is about 128 MiB of this machine's /usr files; pass a file (for
// example an uncompressed initramfs.cpio) to measure that instead.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { gzipSync } from 'node:zlib';
import { compress } from '../src/index.ts';
import { chunked, realisticData } from '../test/helpers.ts';

const mib = Number(process.argv[2] ?? 128);
const file = process.argv[3];
const input = file ? readFileSync(file) : realisticData(mib * 1024 * 1024);
const runs = 3;

async function timeIrb(options: Parameters<typeof compress>[1]): Promise<{ ms: number; size: number }> {
  const start = performance.now();
  let size = 0;
  for await (const chunk of compress(chunked(input, 256 * 1024), options)) size += chunk.length;
  return { ms: performance.now() - start, size };
}

function timeProcess(command: string, args: string[]): Promise<{ ms: number; size: number }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let size = 0;
    child.stdout.on('data', (d: Buffer) => {
      size += d.length;
    });
    child.on('error', reject);
    child.on('close', () => resolve({ ms: performance.now() - start, size }));
    child.stdin.end(input);
  });
}

async function median(
  fn: () => Promise<{ ms: number; size: number }>,
): Promise<{ ms: number; size: number }> {
  const results = [];
  for (let i = 0; i < runs; i++) results.push(await fn());
  results.sort((a, b) => a.ms - b.ms);
  return results[Math.floor(runs / 2)]!;
}

const cores = availableParallelism();
const rows: [string, () => Promise<{ ms: number; size: number }>][] = [
  [`irb gzip -6 (${cores} threads)`, () => timeIrb({ format: 'gzip', level: 6 })],
  ['irb gzip -6 (1 thread)', () => timeIrb({ format: 'gzip', level: 6, threads: 1 })],
  [`pigz -6 (${cores} threads)`, () => timeProcess('pigz', ['-6', '-c'])],
  ['gzip -6', () => timeProcess('gzip', ['-6', '-c'])],
  [
    'node:zlib gzipSync -6',
    async () => {
      const start = performance.now();
      const size = gzipSync(input, { level: 6 }).length;
      return { ms: performance.now() - start, size };
    },
  ],
  [`irb zstd -3 (${cores} threads)`, () => timeIrb({ format: 'zstd', level: 3 })],
  ['zstd -3 -T0', () => timeProcess('zstd', ['-3', '-T0', '-c', '-q'])],
];

console.log(`input: ${(input.length / 1048576).toFixed(1)} MiB, ${cores} cores, median of ${runs} runs\n`);
console.log('| what | MB/s | ratio | output bytes |');
console.log('| --- | ---: | ---: | ---: |');
for (const [name, fn] of rows) {
  const { ms, size } = await median(fn);
  const mbps = input.length / 1e6 / (ms / 1000);
  console.log(`| ${name} | ${mbps.toFixed(1)} | ${(size / input.length).toFixed(4)} | ${size} |`);
}
