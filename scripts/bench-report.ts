/**
 * The report of `pnpm bench`: the rows it measured, rendered as the markdown table (with the
 * issue's targets as PASS/MISS), and written between the markers of `--out FILE`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';

/** The stages of the classic pipeline and irb, in the order the report lists them. */
export const STAGE_ORDER = ['skopeo', 'umoci', 'find', 'sort', 'cpio', 'decompress', 'compress', 'irb'];

/** A progress line on stderr. */
export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export type Compression = 'gzip' | 'zstd';

export interface Options {
  runs: number;
  only: Compression[];
  bigSize: number;
  skipBig: boolean;
  /** Leave out the Debian + rustc/cargo rows (peak RSS of a cold build of a large real image). */
  skipRust: boolean;
  cli: 'dist' | 'source';
  build: boolean;
  profileDir?: string;
  out?: string;
  quick: boolean;
  /** Only the classic and floor rows (when the CLI does not work yet). */
  noIrb: boolean;
  /** Another checkout whose built CLI (`apps/cli/dist/bin.js`) also runs, as "irb before" rows. */
  before?: string;
  /** What the before rows are called. */
  beforeLabel: string;
}

export interface Sample {
  wallMs: number;
  /** Peak RSS in KiB: the largest of the pipeline's stages. */
  rssKb: number;
  /** CPU time (user + system, seconds) of all stages. */
  cpuSeconds: number;
  /** Each stage's own wall time (seconds) and peak RSS (KiB); stages of a pipe overlap. */
  stages: Map<string, { seconds: number; rssKb: number }>;
  outputBytes: number;
  outputSha256: string;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface Row {
  workload: string;
  compression: Compression;
  name: string;
  /**
   * What the row is (ratios and targets depend on it). The floor is three rows: the layers
   * decompressed (in parallel), the compressor alone over the archive, and both one after the
   * other (`floor`, what "× floor" divides by). `before-*` rows are another checkout's CLI.
   */
  kind:
    | 'irb-cold'
    | 'irb-warm'
    /** An unchanged rebuild into the output it wrote before (issue 23's ≤ 3× `node -e 0`). */
    | 'irb-rebuild'
    | 'before-cold'
    | 'before-warm'
    | 'before-rebuild'
    | 'classic'
    | 'classic-parallel'
    | 'floor-decompress'
    | 'floor-compress'
    | 'floor'
    /** `node -e 0`: what an unchanged rebuild (a warm or rebuild row) is compared with. */
    | 'node';
  samples: Sample[];
  entries?: number;
}

export interface Target {
  label: string;
  limit: number;
  value: number;
  unit: string;
}

export function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

export function fmtMiB(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

export function fmtRatio(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '—' : `${value.toFixed(2)}×`;
}

export interface Facts {
  cpioBytes: number;
  cpioEntries: number;
  debianBlobs: number;
  bigContent: number | undefined;
  bigBlobs: number | undefined;
  rustBlobs: number | undefined;
  commit: string;
  loadAtStart: number[];
}

export function renderReport(
  options: Options,
  rows: Row[],
  memoryRows: Row[],
  rustRows: Row[],
  facts: Facts,
): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const lines: string[] = [];
  const command = `pnpm bench${options.quick ? ' --quick' : options.runs !== 3 ? ` --runs ${options.runs}` : ''}${
    options.cli === 'source' ? ' --cli source' : ''
  }${options.build ? '' : ' --no-build'}${
    options.only.length === 1 ? ` --only ${options.only[0]}` : ''
  }${options.skipBig ? ' --skip-big' : options.bigSize !== 1_000_000_000 ? ` --big-size ${options.bigSize}` : ''}${
    options.skipRust ? ' --skip-rust' : ''
  }${options.before ? ` --before CHECKOUT --before-label '${options.beforeLabel}'` : ''}`;
  const loads = (values: number[]) => values.map((l) => l.toFixed(2)).join(' ');
  lines.push(
    `Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}; ` +
      `load average ${loads(facts.loadAtStart)} at the start, ${loads(loadavg())} at the end; ` +
      `irb commit ${facts.commit}, CLI from ${options.cli === 'dist' ? 'apps/cli/dist' : 'source'}.`,
    '',
    `Workload: Debian bookworm minbase + python3 (3 layers, whiteouts, opaque dirs, hard links), ` +
      `${fmtMiB(facts.debianBlobs)} of blobs, ${fmtMiB(facts.cpioBytes)} uncompressed cpio, ${facts.cpioEntries} entries ` +
      `(classic pipeline's count), served by a local docker-registry on 127.0.0.1.`,
    '',
    `Wall time is the median of ${options.runs} run${options.runs > 1 ? 's' : ''}, measured around the whole ` +
      'command (process start-up included). CPU is user + system time of all processes (median). Peak RSS is `/usr/bin/time -f %M` of the process; for pipelines, ' +
      'the largest stage. "× classic" and "× floor" are medians of the ratios run by run (the rows\' runs are ' +
      'interleaved, so each pair saw about the same load). The floor is what any tool must at least spend: ' +
      'the layer blobs decompressed (all at once, from the page cache, to nowhere), then the archive compressed ' +
      "(the classic pipeline's uncompressed cpio of the same image, from the page cache). " +
      '"× node -e 0" compares an unchanged rebuild with a bare `node -e 0` run just before it in the same round: the warm row writes a new output file (both cached members copied into it), the rebuild row builds into the output it wrote before, already up to date (nothing written).',
    '',
    '| compression | pipeline | wall | × classic | × floor | × node -e 0 | CPU | peak RSS | output | entries |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const targets: Array<Target & { pass: boolean }> = [];
  const med = (row: Row | undefined) => (row ? median(row.samples.map((s) => s.wallMs)) : Number.NaN);
  // Runs are interleaved, so run i of two rows saw about the same load: a ratio is the median of
  // the runs' ratios (pair by pair), not the ratio of two medians taken minutes apart.
  const ratio = (row: Row, to: Row | undefined) =>
    to && to.samples.length === row.samples.length
      ? median(row.samples.map((s, i) => s.wallMs / (to.samples[i] as Sample).wallMs))
      : Number.NaN;
  for (const compression of options.only) {
    const group = rows.filter((row) => row.compression === compression);
    const classic = group.find((row) => row.kind === 'classic-parallel');
    const floor = group.find((row) => row.kind === 'floor');
    const compressorAlone = group.find((row) => row.kind === 'floor-compress');
    const node = group.find((row) => row.kind === 'node');
    for (const row of group) {
      const wall = med(row);
      const rss = Math.max(...row.samples.map((s) => s.rssKb)) * 1024;
      const last = row.samples.at(-1)!;
      const shas = new Set(row.samples.map((s) => s.outputSha256));
      const irbRow = row.kind.startsWith('irb') || row.kind.startsWith('before');
      const determinism = irbRow && shas.size > 1 ? ' (outputs differ between runs!)' : '';
      const output = row.kind === 'floor-decompress' || row.kind === 'node' ? '—' : fmtMiB(last.outputBytes);
      const warm = /^(irb|before)-(warm|rebuild)$/.test(row.kind);
      lines.push(
        `| ${compression} | ${row.name.replaceAll('|', '\\|')}${determinism} | ${fmtSeconds(wall)} | ${fmtRatio(ratio(row, classic))} | ` +
          `${fmtRatio(ratio(row, floor))} | ${warm || row.kind === 'node' ? fmtRatio(ratio(row, node)) : '—'} | ` +
          `${median(row.samples.map((s) => s.cpuSeconds)).toFixed(1)} s | ${fmtMiB(rss)} | ${output} | ${row.entries ?? '—'} |`,
      );
      if (row.kind === 'irb-cold' && compression === 'gzip') {
        targets.push(check('gzip, cold cache ≤ 0.4× classic (pigz)', 0.4, ratio(row, classic), '×'));
        targets.push(
          check('gzip, cold cache ≤ 1.05× floor (pigz -dc, then pigz -6)', 1.05, ratio(row, floor), '×'),
        );
      }
      if (row.kind === 'irb-warm' && compression === 'gzip') {
        targets.push(check('gzip, warm cache ≤ 1.3× pigz -6 alone', 1.3, ratio(row, compressorAlone), '×'));
      }
      if (row.kind === 'irb-rebuild') {
        targets.push(
          check(
            `${compression}, unchanged rebuild, output up to date ≤ 3× node -e 0`,
            3,
            ratio(row, node),
            '×',
          ),
        );
      }
      if (row.kind === 'irb-cold' && compression === 'zstd') {
        targets.push(check('zstd, cold cache ≤ 0.25× classic (zstd -3 -T0)', 0.25, ratio(row, classic), '×'));
        targets.push(
          check('zstd, cold cache ≤ 1.2× floor (pigz -dc, then zstd -3 -T0)', 1.2, ratio(row, floor), '×'),
        );
      }
      if (row.kind.startsWith('irb')) {
        targets.push(check(`peak RSS ≤ 256 MiB (${compression}, ${row.name})`, 256, rss / 1048576, ' MiB'));
      }
    }
  }
  const staged = rows.filter((row) => (row.samples[0]?.stages.size ?? 0) > 1);
  if (staged.length > 0) {
    lines.push('', 'Stage wall times (median; the stages joined by `|` run at the same time):', '');
    for (const row of staged) {
      const names = STAGE_ORDER.filter((name) => row.samples[0]!.stages.has(name));
      const parts = names.map((name) => {
        const seconds = median(row.samples.map((s) => s.stages.get(name)?.seconds ?? Number.NaN));
        return `${name} ${seconds.toFixed(1)} s`;
      });
      lines.push(
        `- ${row.compression}, ${row.name.replace(/^classic: .*→ /, 'classic → ')}: ${parts.join(', ')}`,
      );
    }
  }
  if (memoryRows.length > 0) {
    const debianCold = rows.find((row) => row.kind === 'irb-cold' && row.compression === 'gzip');
    const debianRss = debianCold ? Math.max(...debianCold.samples.map((s) => s.rssKb)) * 1024 : undefined;
    lines.push(
      '',
      `Memory: irb, gzip, cold cache, on the Debian image and on a synthetic image of ${fmtMiB(facts.bigContent ?? 0)} ` +
        `of file contents (${fmtMiB(facts.bigBlobs ?? 0)} of gzip blobs; random, text-like and repetitive files).`,
      '',
      '| image | content | wall | throughput | peak RSS | output | entries |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    if (debianCold && debianRss !== undefined) {
      const wall = med(debianCold);
      lines.push(
        `| Debian + python3 | ${fmtMiB(facts.cpioBytes)} | ${fmtSeconds(wall)} | ` +
          `${(facts.cpioBytes / 1048576 / (wall / 1000)).toFixed(0)} MiB/s | ${fmtMiB(debianRss)} | ` +
          `${fmtMiB(debianCold.samples.at(-1)!.outputBytes)} | ${debianCold.entries ?? '—'} |`,
      );
    }
    for (const row of memoryRows) {
      const wall = med(row);
      const rss = Math.max(...row.samples.map((s) => s.rssKb)) * 1024;
      lines.push(
        `| ${row.workload} | ${fmtMiB(facts.bigContent ?? 0)} | ${fmtSeconds(wall)} | ` +
          `${((facts.bigContent ?? 0) / 1048576 / (wall / 1000)).toFixed(0)} MiB/s | ${fmtMiB(rss)} | ` +
          `${fmtMiB(row.samples.at(-1)!.outputBytes)} | ${row.entries ?? '—'} |`,
      );
      targets.push(check('peak RSS ≤ 256 MiB on the 1 GB image', 256, rss / 1048576, ' MiB'));
      if (debianRss !== undefined) {
        // "No larger": allow 10 % for noise in RSS between two different images.
        targets.push(
          check(
            'peak RSS on the 1 GB image ≤ 1.1× the Debian image’s',
            (debianRss * 1.1) / 1048576,
            rss / 1048576,
            ' MiB',
          ),
        );
      }
    }
  }
  if (rustRows.length > 0) {
    lines.push(
      '',
      `Peak RSS on a large real image: Debian bookworm minbase + rustc/cargo (2 layers, ${fmtMiB(facts.rustBlobs ?? 0)} ` +
        'of gzip blobs), irb, cold cache, from the same local registry. Peak RSS is the largest of the runs.',
      '',
      '| compression | wall | CPU | peak RSS | output | entries |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const row of rustRows) {
      const rss = Math.max(...row.samples.map((s) => s.rssKb)) * 1024;
      const who = row.kind === 'irb-cold' ? '' : ` (${row.name.replace(/, cold cache$/, '')})`;
      lines.push(
        `| ${row.compression}${who} | ${fmtSeconds(med(row))} | ${median(row.samples.map((s) => s.cpuSeconds)).toFixed(1)} s | ` +
          `${fmtMiB(rss)} | ${fmtMiB(row.samples.at(-1)!.outputBytes)} | ${row.entries ?? '—'} |`,
      );
      if (row.kind !== 'irb-cold') continue;
      targets.push(
        check(
          `peak RSS ≤ 256 MiB (Debian + rustc/cargo, ${row.compression}, cold)`,
          256,
          rss / 1048576,
          ' MiB',
        ),
      );
    }
  }
  lines.push('', '| target | result | |', '| --- | ---: | --- |');
  for (const target of targets) {
    lines.push(
      `| ${target.label} | ${target.value.toFixed(2)}${target.unit} (limit ${target.limit.toFixed(2)}${target.unit}) | ` +
        `${target.pass ? 'PASS' : '**MISS**'} |`,
    );
  }
  lines.push(
    '',
    `Reproduce: \`${command}\` (from the repository root, as root, after \`. scripts/ensure-env.sh\`).`,
    '',
  );
  return `${lines.join('\n')}\n`;
}

export function check(label: string, limit: number, value: number, unit: string): Target & { pass: boolean } {
  return { label, limit, value, unit, pass: Number.isFinite(value) && value <= limit };
}

export async function writeOut(path: string, report: string): Promise<void> {
  const block = `<!-- bench:start -->\n${report}<!-- bench:end -->`;
  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch {}
  const pattern = /<!-- bench:start -->[\s\S]*<!-- bench:end -->/;
  const next = pattern.test(text)
    ? text.replace(pattern, () => block)
    : `${text}${text ? '\n' : ''}${block}\n`;
  await writeFile(path, next);
  log(`wrote ${path}`);
}
