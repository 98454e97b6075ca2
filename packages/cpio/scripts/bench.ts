/**
 * Throughput and memory of @irb/cpio, printed as a table. Not a test: numbers depend on the machine.
 *
 *   pnpm --filter @irb/cpio bench            (or: node --conditions=@irb/source scripts/bench.ts)
 *
 * IRB_BENCH_SCALE=0.25 shrinks every case.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type CpioEntry, packCpio, readCpio } from '@irb/cpio';
import { entriesFromDirectory } from '@irb/cpio/node';

const scale = Number(process.env.IRB_BENCH_SCALE ?? 1);
const MiB = 1024 * 1024;
const rows: string[][] = [];
let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 20);

async function drain(it: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const c of it) n += c.length;
  return n;
}

async function measure(name: string, run: () => Promise<{ bytes: number; items: number }>): Promise<void> {
  globalThis.gc?.();
  peakRss = process.memoryUsage().rss;
  const t0 = performance.now();
  const { bytes, items } = await run();
  const s = (performance.now() - t0) / 1000;
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  rows.push([
    name,
    `${(bytes / MiB).toFixed(0)} MiB`,
    String(items),
    `${s.toFixed(2)} s`,
    `${(bytes / MiB / s).toFixed(0)} MiB/s`,
    `${Math.round(items / s)}`,
    `${(peakRss / MiB).toFixed(0)} MiB`,
  ]);
}

const chunk = new Uint8Array(256 * 1024).map((_, i) => (i * 31) & 0xff);
const bigSize = Math.round(1024 * scale) * MiB;

function* bigFile(): Generator<CpioEntry> {
  yield {
    type: 'file',
    path: 'big',
    mode: 0o644,
    size: bigSize,
    body: async function* () {
      for (let o = 0; o < bigSize; o += chunk.length) yield chunk;
    },
  };
}

const smallCount = Math.round(200_000 * scale);
const small = new Uint8Array(700).fill(65);
function* smallFiles(): Generator<CpioEntry> {
  for (let i = 0; i < smallCount; i++) {
    yield { type: 'file', path: `usr/share/f${i}`, mode: 0o644, size: small.length, body: small };
  }
}

await measure('pack 1 file, 256 KiB chunks', async () => ({
  bytes: await drain(packCpio(bigFile())),
  items: 1,
}));
await measure('pack 1 file, crc (body read twice)', async () => {
  const bytes = await drain(packCpio(bigFile(), { format: 'crc' }));
  return { bytes, items: 1 };
});
await measure('pack 700 B files', async () => ({
  bytes: await drain(packCpio(smallFiles())),
  items: smallCount,
}));
await measure('pack + read 700 B files', async () => {
  const archive: Uint8Array[] = [];
  for await (const c of packCpio(smallFiles())) archive.push(c);
  let items = 0;
  for await (const e of readCpio(archive)) {
    items++;
    for await (const c of e.body) void c;
  }
  return { bytes: archive.reduce((n, c) => n + c.length, 0), items };
});

// A directory on disk: irb (entriesFromDirectory + packCpio) against `find | cpio -o -H newc`.
const work = await mkdtemp(join(tmpdir(), 'irb-cpio-bench-'));
try {
  const files = Math.round(20_000 * scale);
  const body = new Uint8Array(10_000).fill(66);
  for (let d = 0; d < files / 100; d++) {
    await mkdir(join(work, 'tree', `d${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) await writeFile(join(work, 'tree', `d${d}`, `f${f}`), body);
  }
  // Interleaved, best of 3: other processes on the machine move single runs a lot.
  const best = { irb: Number.POSITIVE_INFINITY, gnu: Number.POSITIVE_INFINITY };
  let bytes = 0;
  for (let r = 0; r < 3; r++) {
    let t0 = performance.now();
    bytes = await drain(packCpio(entriesFromDirectory(join(work, 'tree'))));
    best.irb = Math.min(best.irb, (performance.now() - t0) / 1000);
    t0 = performance.now();
    spawnSync('sh', ['-c', 'find . | LC_ALL=C sort | cpio -o --quiet -H newc > /dev/null'], {
      cwd: join(work, 'tree'),
    });
    best.gnu = Math.min(best.gnu, (performance.now() - t0) / 1000);
  }
  for (const [name, s] of [
    ['irb: directory, 10 kB files (best of 3)', best.irb],
    ['GNU: find | sort | cpio -o (best of 3)', best.gnu],
  ] as const) {
    rows.push([
      name,
      `${(bytes / MiB).toFixed(0)} MiB`,
      String(files),
      `${s.toFixed(2)} s`,
      `${(bytes / MiB / s).toFixed(0)} MiB/s`,
      `${Math.round(files / s)}`,
      '-',
    ]);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
clearInterval(sampler);

const head = ['case', 'output', 'entries', 'time', 'throughput', 'entries/s', 'peak RSS'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
console.log(line(head));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const r of rows) console.log(line(r));
console.log(`node ${process.version}, scale ${scale}`);
