/**
 * What `pnpm bench:boot`'s two modes share: progress lines, the machine line above a table, and
 * writing a table into a file between its markers.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';

/** A progress line on stderr. */
export function log(message: string): void {
  process.stderr.write(`[boot-bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** Milliseconds as seconds with two decimals; `–` for a phase no run showed. */
export function seconds(ms: number | undefined): string {
  return ms === undefined || Number.isNaN(ms) ? '–' : `${(ms / 1000).toFixed(2)} s`;
}

/** The median of the numbers among `values`; `undefined` when there are none. */
export function medianOf(values: readonly (number | undefined)[]): number | undefined {
  const sorted = values.filter((v): v is number => typeof v === 'number').sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The machine, the accelerator and the kernel a table was measured with, and the load at its end. */
export function machineLine(accel: 'kvm' | 'tcg', kernel: string): string {
  const note = accel === 'tcg' ? 'software emulation; KVM does not work on this machine' : 'hardware';
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  return `Machine: ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, QEMU ${accel.toUpperCase()} (${note}), kernel ${kernel.split('/').pop()}; load ${load} at the end.`;
}

/**
 * Writes `table` into `file` between `<!-- NAME:start -->` and `<!-- NAME:end -->`, keeping the
 * text around them; a file without the markers gets them appended under `heading`.
 */
export async function writeMarked(file: string, name: string, heading: string, table: string): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${start}\n${table}\n${end}`;
  const at = text.indexOf(start);
  const to = text.indexOf(end);
  const next =
    at >= 0 && to > at
      ? text.slice(0, at) + block + text.slice(to + end.length)
      : `${text.trimEnd()}\n\n## ${heading}\n\n${block}\n`;
  await writeFile(file, next);
  log(`wrote ${file}`);
}
