#!/usr/bin/env node
/**
 * `pnpm bench:boot`: what an archive costs at boot. For the Debian python3 fixture, one row per
 * compression (none, lz4, zstd, gzip) and variant (full, slim presets, traced): archive size,
 * rebuild time (in process, base member from the output cache), time to /init and to the program's first line, from
 * `bootTimeline` (printk times and the init's markers) under QEMU. Prints a markdown table;
 * `--out FILE` also writes it into FILE between `<!-- boot-bench:start -->` and
 * `<!-- boot-bench:end -->`.
 *
 * With `--agent`, the other table instead: QEMU's start → the agent's first answer, for the
 * python3 image with the example agent as its program (`scripts/agent-bench.ts`), written between
 * `<!-- boot-bench-agent:start -->` and `<!-- boot-bench-agent:end -->`.
 *
 * Usage: pnpm bench:boot [--runs N] [--only none,lz4,...] [--variants full,slim,traced,sh] [--out FILE]
 *        pnpm bench:boot --agent [--runs N] [--only lz4,zstd] [--variants full,traced] [--inits static,sh] [--kernels bzImage,vmlinux] [--out FILE]
 *
 * Measured, never asserted. Boots are interleaved across rows so that load on this shared
 * machine spreads over all of them.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type BootTimeline, bootTimeline, findKernel, probeKvm } from '../packages/boot/src/index.ts';
import { cacheLayout, InitramfsBuilder, traceImage } from '../packages/builder/src/index.ts';
import { ensureDebianPythonImage } from '../packages/test-utils/src/debian-image.ts';
import {
  type AgentFormat,
  type AgentInit,
  type AgentKernel,
  type AgentVariant,
  agentBench,
} from './agent-bench.ts';
import { log, machineLine, medianOf, seconds, writeMarked } from './boot-bench-kit.ts';

type Format = 'none' | 'lz4' | 'zstd' | 'gzip';
type Variant = 'full' | 'slim' | 'traced' | 'full, sh init';

function usage(message: string): never {
  process.stderr.write(
    `boot-bench: ${message}\nusage: pnpm bench:boot [--runs N] [--only none,lz4,zstd,gzip] [--variants full,slim,traced,sh] [--out FILE]\n` +
      '       pnpm bench:boot --agent [--runs N] [--only lz4,zstd] [--variants full,traced] [--inits static,sh] [--kernels bzImage,vmlinux] [--out FILE]\n',
  );
  process.exit(2);
}

let parsed: ReturnType<typeof parseOptions>;
function parseOptions() {
  return parseArgs({
    options: {
      agent: { type: 'boolean', default: false },
      runs: { type: 'string', default: '5' },
      only: { type: 'string' },
      variants: { type: 'string' },
      inits: { type: 'string' },
      kernels: { type: 'string' },
      out: { type: 'string' },
    },
    strict: true,
  }).values;
}
try {
  parsed = parseOptions();
} catch (error) {
  usage((error as Error).message);
}
const values = parsed;
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) usage(`--runs takes a whole number ≥ 1, not ${values.runs}`);
/** The comma-separated `value`, or `fallback`; each item must be one of `allowed`. */
function list<T extends string>(
  flag: string,
  value: string | undefined,
  fallback: string,
  allowed: readonly T[],
): T[] {
  const items = (value ?? fallback).split(',').filter((v) => v !== '');
  for (const item of items) {
    if (!allowed.includes(item as T)) usage(`${flag} takes ${allowed.join(', ')}; not ${item}`);
  }
  return items as T[];
}

if (values.agent) {
  await agentBench({
    runs,
    formats: list<AgentFormat>('--only', values.only, 'lz4,zstd', ['lz4', 'zstd']),
    variants: list<AgentVariant>('--variants', values.variants, 'full,traced', ['full', 'traced']),
    inits: list<AgentInit>('--inits', values.inits, 'static,sh', ['static', 'sh']),
    kernels: list<AgentKernel>('--kernels', values.kernels, 'bzImage,vmlinux', ['bzImage', 'vmlinux']),
    ...(values.out ? { out: values.out } : {}),
  });
  process.exit(0);
}
if (values.inits !== undefined || values.kernels !== undefined) {
  usage('--inits and --kernels are for --agent; the default table has the `sh` variant');
}
const formats = list<Format>('--only', values.only, 'none,lz4,zstd,gzip', ['none', 'lz4', 'zstd', 'gzip']);
const variants = list('--variants', values.variants, 'full,slim,traced,sh', [
  'full',
  'slim',
  'traced',
  'sh',
]).map((v) => (v === 'sh' ? 'full, sh init' : v)) as Variant[];
const median = (xs: number[]) => medianOf(xs) ?? Number.NaN;

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
  const s = seconds;
  const lines = [
    machineLine(accel, kernel),
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
  if (values.out) await writeMarked(values.out, 'boot-bench', 'Boot time', table);
} finally {
  await rm(dir, { recursive: true, force: true });
}
