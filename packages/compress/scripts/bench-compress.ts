// Prints a table of compression throughput and ratio: irb's gzip, zstd (both backends) and
// lz4 against pigz, gzip(1), zstd(1) and lz4(1) over the same input. Not a test; run it with
//   node --conditions=@irb/source packages/compress/scripts/bench-compress.ts [MiB] [file]
// The default input is about 128 MiB of this machine's /usr files; pass a file (for
// example an uncompressed initramfs.cpio) to measure that instead. Besides wall-clock
// MB/s it reports CPU seconds, which stay meaningful on a machine shared with other work.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { compress, ZSTD_BACKEND_ENV } from '../src/index.ts';
import { chunked, realisticData } from '../test/helpers.ts';

const mib = Number(process.argv[2] ?? 128);
const file = process.argv[3];
const input = file ? readFileSync(file) : realisticData(mib * 1024 * 1024);
const runs = 3;
const scratch = mkdtempSync(join(tmpdir(), 'irb-bench-compress-'));
const inputFile = join(scratch, 'input');
writeFileSync(inputFile, input);

interface Sample {
  ms: number;
  cpuMs: number;
  size: number;
}

async function timeIrb(options: Parameters<typeof compress>[1]): Promise<Sample> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  let size = 0;
  for await (const chunk of compress(chunked(input, 256 * 1024), options)) size += chunk.length;
  const used = process.cpuUsage(cpu);
  return { ms: performance.now() - start, cpuMs: (used.user + used.system) / 1000, size };
}

function timeProcess(command: string): Promise<Sample> {
  // bash's `time` reports the child's CPU time, which Node cannot see.
  const script = `TIMEFORMAT='%R %U %S'; { time ${command} < ${inputFile} | wc -c; } 2>&1`;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.on('error', reject);
    child.on('close', () => {
      const [size, real, user, sys] = text.trim().split(/\s+/).map(Number);
      resolve({ ms: real! * 1000, cpuMs: (user! + sys!) * 1000, size: size! });
    });
  });
}

async function withZstd(backend: string, options: Parameters<typeof compress>[1]): Promise<Sample> {
  process.env[ZSTD_BACKEND_ENV] = backend;
  try {
    return await timeIrb(options);
  } finally {
    delete process.env[ZSTD_BACKEND_ENV];
  }
}

async function median(fn: () => Promise<Sample>): Promise<Sample> {
  const results: Sample[] = [];
  for (let i = 0; i < runs; i++) results.push(await fn());
  results.sort((a, b) => a.ms - b.ms);
  return results[Math.floor(runs / 2)]!;
}

const cores = availableParallelism();
const rows: [string, () => Promise<Sample>][] = [
  [`irb gzip -6 (${cores} threads)`, () => timeIrb({ format: 'gzip', level: 6 })],
  ['irb gzip -6 (1 thread)', () => timeIrb({ format: 'gzip', level: 6, threads: 1 })],
  [`pigz -6 (${cores} threads)`, () => timeProcess('pigz -6 -c')],
  ['gzip -6', () => timeProcess('gzip -6 -c')],
  [
    'node:zlib gzipSync -6',
    async () => {
      const cpu = process.cpuUsage();
      const start = performance.now();
      const size = gzipSync(input, { level: 6 }).length;
      const used = process.cpuUsage(cpu);
      return { ms: performance.now() - start, cpuMs: (used.user + used.system) / 1000, size };
    },
  ],
  [`irb zstd -3 (${cores} threads, zstd-napi)`, () => withZstd('napi', { format: 'zstd', level: 3 })],
  ['irb zstd -3 (1 thread, node:zlib)', () => withZstd('node', { format: 'zstd', level: 3 })],
  ['zstd -3 -T0', () => timeProcess('zstd -3 -T0 -c -q')],
  [`irb lz4 (${cores} threads)`, () => timeIrb({ format: 'lz4' })],
  ['irb lz4 (1 thread)', () => timeIrb({ format: 'lz4', threads: 1 })],
  ['lz4 -l -1', () => timeProcess('lz4 -l -1 -c')],
  // What the kernel's own build uses for lz4 initramfs images.
  ['lz4 -l -9', () => timeProcess('lz4 -l -9 -c')],
];

console.log(
  `input: ${(input.length / 1048576).toFixed(1)} MiB, ${cores} cores, load average ${loadavg()[0]!.toFixed(1)}, median of ${runs} runs\n`,
);
console.log('| what | MB/s (wall) | CPU s | MB per CPU s | ratio | output bytes |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
try {
  for (const [name, fn] of rows) {
    const { ms, cpuMs, size } = await median(fn);
    const mb = input.length / 1e6;
    console.log(
      `| ${name} | ${(mb / (ms / 1000)).toFixed(1)} | ${(cpuMs / 1000).toFixed(2)} | ${(mb / (cpuMs / 1000)).toFixed(1)} | ${(size / input.length).toFixed(4)} | ${size} |`,
    );
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
