#!/usr/bin/env node
/**
 * `pnpm bench:boot`: what an archive costs at boot. For the Debian python3 fixture, one row per
 * compression (none, lz4, zstd, gzip) and variant (full, slim presets, traced): archive size,
 * rebuild time (in process, base member from the output cache), time to /init and to the program's first line, from
 * `bootTimeline` (printk times and the init's markers) under QEMU. Prints a markdown table;
 * `--out FILE` also writes it into FILE between `<!-- boot-bench:start -->` and
 * `<!-- boot-bench:end -->`.
 *
 * Usage: pnpm bench:boot [--runs N] [--only none,lz4,...] [--variants full,slim,traced] [--out FILE]
 *
 * Measured, never asserted. Boots are interleaved across rows so that load on this shared
 * machine spreads over all of them.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type BootTimeline, bootTimeline, findKernel, probeKvm } from '../packages/boot/src/index.ts';
import { cacheLayout, InitramfsBuilder, traceImage } from '../packages/builder/src/index.ts';
import { ensureDebianPythonImage } from '../packages/test-utils/src/debian-image.ts';

type Format = 'none' | 'lz4' | 'zstd' | 'gzip';
type Variant = 'full' | 'slim' | 'traced' | 'full, sh init';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    only: { type: 'string', default: 'none,lz4,zstd,gzip' },
    variants: { type: 'string', default: 'full,slim,traced,sh' },
    out: { type: 'string' },
  },
});
const runs = Number(values.runs);
const formats = (values.only as string).split(',') as Format[];
const variants = (values.variants as string)
  .split(',')
  .map((v) => (v === 'sh' ? 'full, sh init' : v)) as Variant[];

const log = (m: string) =>
  process.stderr.write(`[boot-bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0
    ? Number.NaN
    : s.length % 2
      ? (s[m] as number)
      : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

const fixture = await ensureDebianPythonImage();
const kernel = await findKernel();
const accel = (await probeKvm({ kernel })) ? 'kvm' : 'tcg';
const dir = await mkdtemp(join(tmpdir(), 'irb-boot-bench-'));
try {
  const tracePath = join(dir, 'python.trace.json');
  if (variants.includes('traced')) {
    log('tracing the image');
    await writeFile(tracePath, JSON.stringify(await traceImage({ image: fixture.ref })));
  }
  interface Row {
    format: Format;
    variant: Variant;
    archive: string;
    bytes: number;
    buildMs: number[];
    memoryMiB: number;
    boots: BootTimeline[];
  }
  const rows: Row[] = [];
  for (const variant of variants) {
    for (const format of formats) {
      if (variant === 'full, sh init' && format !== 'lz4') continue;
      const archive = join(dir, `${variant.replace(/\W+/g, '-')}.${format}`);
      const options = {
        image: fixture.ref,
        compression: format,
        ...(variant === 'slim' ? { slim: ['docs', 'locales', 'caches', 'devel'] as const } : {}),
        ...(variant === 'traced' ? { keepOnly: [tracePath] } : {}),
        ...(variant === 'full, sh init' ? { initKind: 'sh' as const } : {}),
      };
      // One untimed build fills the blob and index caches; then the timed ones.
      let summary = await new InitramfsBuilder(options).build(archive);
      const buildMs: number[] = [];
      // What the column means: a rebuild on a cached base with the overlay packed anew (an agent
      // changed). The overlay members (and output records) are dropped before each one, or it
      // would be an unchanged rebuild that finds the archive already written.
      const outputDir = cacheLayout().output;
      const dropOverlays = async () => {
        for (const name of await readdir(outputDir).catch(() => [] as string[])) {
          if (/\.(overlay|meta|out)$/.test(name)) await rm(join(outputDir, name), { force: true });
        }
      };
      for (let i = 0; i < Math.min(runs, 3); i++) {
        await dropOverlays();
        summary = await new InitramfsBuilder(options).build(archive);
        buildMs.push(summary.durationMs);
      }
      rows.push({
        format,
        variant,
        archive,
        bytes: summary.compressedBytes,
        buildMs,
        memoryMiB: summary.recommendedMemoryMiB,
        boots: [],
      });
      log(`built ${variant} ${format}: ${(summary.compressedBytes / 2 ** 20).toFixed(1)} MiB`);
    }
  }
  for (let run = 0; run < runs; run++) {
    for (const row of rows) {
      const report = await bootTimeline({
        kernel,
        initramfs: row.archive,
        memoryMb: Math.max(row.memoryMiB, 256),
      });
      row.boots.push(report.median);
    }
    log(`boot round ${run + 1}/${runs} done`);
  }
  const s = (ms: number) => (Number.isNaN(ms) ? '–' : `${(ms / 1000).toFixed(2)} s`);
  const lines = [
    `Machine: ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, QEMU ${accel.toUpperCase()} (${accel === 'tcg' ? 'software emulation: about 10× slower than KVM, proportions hold' : 'hardware'}), kernel ${kernel.split('/').pop()}; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} at the end.`,
    '',
    `Image: Debian bookworm minbase + python3 (test-utils' fixture; its program prints one line and exits). Medians of ${runs} boots (guest clock, from printk and the init's markers) and ${Math.min(runs, 3)} rebuilds in process (the image's member comes from the output cache, the overlay is built anew).`,
    '',
    '| variant | format | archive | rebuild (cached base) | kernel unpacked | /init | program exec | first line |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    const m = (k: keyof BootTimeline) =>
      median(r.boots.map((b) => b[k] as number).filter((v) => typeof v === 'number'));
    lines.push(
      `| ${r.variant} | ${r.format} | ${(r.bytes / 2 ** 20).toFixed(1)} MiB | ${s(median(r.buildMs))} | ${s(m('unpackedMs'))} | ${s(m('initMs'))} | ${s(m('execMs'))} | ${s(m('firstLineMs'))} |`,
    );
  }
  const table = lines.join('\n');
  process.stdout.write(`${table}\n`);
  if (values.out) {
    const file = values.out;
    const text = await readFile(file, 'utf8').catch(() => '');
    const start = '<!-- boot-bench:start -->';
    const end = '<!-- boot-bench:end -->';
    const block = `${start}\n${table}\n${end}`;
    const next =
      text.includes(start) && text.includes(end)
        ? text.slice(0, text.indexOf(start)) + block + text.slice(text.indexOf(end) + end.length)
        : `${text.trimEnd()}\n\n## Boot time\n\n${block}\n`;
    await writeFile(file, next);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
