/**
 * `irb boot ARCHIVE --timeline [--runs N] [--json]`: when each phase of a boot was reached (see
 * `bootTimeline` in @irb/boot), as a small table with a bar per phase, or one JSON object. Loaded
 * by boot.ts for --timeline only.
 */
import {
  type BootResult,
  type BootTimeline,
  bootProblem,
  bootTimeline,
  FORWARD_PHASES,
  type PortForward,
  TIMELINE_PHASES,
} from '@irb/builder';
import { EXIT } from '../kit/errors.ts';
import { bar, table } from '../kit/format.ts';
import type { CliIo } from '../kit/io.ts';
import { corruptArchiveReason, forwardLine, OUT_OF_MEMORY, unpackFailure } from './boot-verdict.ts';

/** What a timeline run needs: boot.ts has chosen the memory and the timeout. */
export interface TimelineArgs {
  archive: string;
  kernel?: string;
  memoryMb: number;
  timeoutS: number;
  kernelArgs: string[];
  /** `--net` (`true`) or `--forward`s: with forwards, the first is probed (see bootTimeline). */
  network?: true | { forwards: PortForward[] };
  runs: number;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
}

/** What each phase is called in the table, in boot order. */
export const PHASE_LABELS: Readonly<Record<(typeof TIMELINE_PHASES)[number], string>> = {
  unpackStartMs: 'kernel unpack start',
  unpackedMs: 'unpacked',
  initMs: '/init',
  modulesMs: 'modules loaded',
  netMs: 'network up',
  execMs: 'program exec',
  firstLineMs: 'first line',
  endMs: 'VM end',
  wallMs: 'wall',
};

/** Every phase a timeline reports: the guest's, then those of a probed forward (host clock). */
const ALL_PHASES = [...TIMELINE_PHASES, ...FORWARD_PHASES] as const;

/** What each forward phase is called in the table. */
export const FORWARD_LABELS: Readonly<Record<(typeof FORWARD_PHASES)[number], string>> = {
  netUpMs: 'network answers',
  acceptedMs: 'port accepts',
  answerMs: 'first answer',
};

const BAR_WIDTH = 40;

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const value = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return Math.round(value * 10) / 10;
}

/** Each phase's value over the runs that showed it, reduced by `reduce`. */
function across(
  runs: readonly BootTimeline[],
  reduce: (values: number[]) => number | undefined,
): BootTimeline {
  const out: BootTimeline = { wallMs: 0 };
  for (const phase of ALL_PHASES) {
    const value = reduce(runs.map((r) => r[phase]).filter((v): v is number => v !== undefined));
    if (value !== undefined) out[phase] = value;
  }
  return out;
}

/** Each phase's median over the runs that showed it. */
export function medianTimeline(runs: readonly BootTimeline[]): BootTimeline {
  return across(runs, median);
}

/** A series of boots: each phase's median, and its spread (min and max) beside it. */
export interface TimelineStats {
  runs: number;
  median: BootTimeline;
  min: BootTimeline;
  max: BootTimeline;
  /** The first line of the last answer a probed forward gave. */
  answerLine?: string;
}

/** The median, min and max of each phase over `runs`. */
export function timelineStats(runs: readonly BootTimeline[]): TimelineStats {
  const extreme = (pick: (...values: number[]) => number) => (values: number[]) =>
    values.length === 0 ? undefined : pick(...values);
  const answerLine = runs.findLast((r) => r.answerLine !== undefined)?.answerLine;
  return {
    runs: runs.length,
    median: medianTimeline(runs),
    min: across(runs, extreme(Math.min)),
    max: across(runs, extreme(Math.max)),
    ...(answerLine !== undefined ? { answerLine } : {}),
  };
}

function ms(value: number | undefined): string {
  return value === undefined ? '—' : value.toFixed(1);
}

/**
 * The table: when each phase was reached, how long it took since the previous one, and a bar
 * that starts where the previous phase ended, so the long step stands out. The guest phases are
 * on the guest's clock (0 = the kernel started); `wall` is the host's, firmware and QEMU included,
 * and has no bar.
 */
export function timelineText(archive: string, stats: TimelineStats, exitStatus?: number): string[] {
  const t = stats.median;
  // Modules and network are phases only of archives that load modules or configure a network.
  const guest = TIMELINE_PHASES.filter(
    (p) => p !== 'wallMs' && !((p === 'modulesMs' || p === 'netMs') && t[p] === undefined),
  );
  // Bars share the guest's scale: the wall time holds firmware and QEMU start-up (seconds under
  // emulation), which would squeeze the phases a user can change into slivers.
  const scale = Math.max(1, ...guest.map((p) => t[p] ?? 0));
  // Over several boots, the spread stands beside the median: one slow boot shows as a wide one.
  const spread = stats.runs > 1;
  const range = (phase: (typeof ALL_PHASES)[number]) =>
    spread ? [ms(stats.min[phase]), ms(stats.max[phase])] : [];
  const rows: string[][] = [['phase', 'at ms', ...(spread ? ['min', 'max'] : []), '+ms', '']];
  let previous = 0;
  for (const phase of guest) {
    const at = t[phase];
    if (at === undefined) {
      rows.push([PHASE_LABELS[phase], '—', ...(spread ? ['', ''] : []), '', '']);
      continue;
    }
    const step = Math.max(0, at - previous);
    const offset = ' '.repeat(Math.floor((previous / scale) * BAR_WIDTH));
    rows.push([
      PHASE_LABELS[phase],
      ms(at),
      ...range(phase),
      `+${ms(step)}`,
      `${offset}${bar(step, scale, BAR_WIDTH) || '▏'}`,
    ]);
    previous = Math.max(previous, at);
  }
  // A probed forward's phases are on the host's clock, from QEMU's start: no bar on the guest's scale.
  let since = 0;
  for (const phase of FORWARD_PHASES.filter((p) => t[p] !== undefined)) {
    const at = t[phase] as number;
    const note =
      phase === 'answerMs' ? (stats.answerLine ?? '') : since === 0 ? 'host clock, since QEMU started' : '';
    rows.push([FORWARD_LABELS[phase], ms(at), ...range(phase), `+${ms(Math.max(0, at - since))}`, note]);
    since = Math.max(since, at);
  }
  rows.push([
    'wall',
    ms(t.wallMs),
    ...range('wallMs'),
    '',
    'host clock: QEMU start to exit, firmware included',
  ]);
  const what = stats.runs === 1 ? 'one boot' : `median of ${stats.runs} boots, min and max beside it`;
  const right = [false, true, ...(spread ? [true, true] : []), true, false];
  const lines = [
    `boot timeline of ${archive} (${what}; ms since the kernel started, on the guest's clock)`,
    ...table(rows, right).map((l) => `  ${l.trimEnd()}`),
  ];
  const missing = guest.filter((p) => t[p] === undefined).map((p) => PHASE_LABELS[p]);
  if (missing.includes('kernel unpack start')) {
    lines.push(
      '  the console had no kernel timestamps: boot a kernel that prints them (do not pass quiet or printk.time=0)',
    );
  } else if (missing.includes('program exec')) {
    lines.push("  no program exec: the /init is not irb's generated one, which prints that marker");
  } else if (missing.includes('first line')) {
    lines.push('  no first line: the program printed nothing on the console');
  }
  if (exitStatus !== undefined) lines.push(`  exit status ${exitStatus}`);
  return lines;
}

/**
 * The `--json` object: one field per phase with its median (the BootTimeline names, ms, `null`
 * when not seen; the forward phases too), the probed forward's `answerLine`, and `min` and `max`
 * objects of the phase fields.
 */
export function timelineJson(archive: string, stats: TimelineStats, exitStatus?: number) {
  const phases = (t: BootTimeline) => Object.fromEntries(ALL_PHASES.map((p) => [p, t[p] ?? null]));
  return {
    archive,
    runs: stats.runs,
    ...phases(stats.median),
    answerLine: stats.answerLine ?? null,
    min: phases(stats.min),
    max: phases(stats.max),
    exitStatus: exitStatus ?? null,
  };
}

/** Why a boot did not end the way a timeline needs (powered off, or answered on the forward), or `undefined`. */
function failure(result: BootResult, timeoutS: number, probed: boolean): string | undefined {
  if (result.output.trim() === '')
    return (
      bootProblem(result) ??
      'the kernel printed nothing on the console; check the kernel (--kernel) and --memory'
    );
  const corrupt = unpackFailure(result.output);
  if (corrupt !== undefined) return corruptArchiveReason(corrupt);
  if (OUT_OF_MEMORY.test(result.output)) return 'the guest ran out of memory; give it more with --memory';
  if (result.panicked) return 'the kernel panicked; boot without --timeline to read the console';
  if (result.timedOut)
    return probed
      ? `the guest neither answered on guest port ${result.forwards[0]?.guestPort} nor powered off within ${timeoutS} s; raise --timeout or check the console`
      : `the VM did not power off within ${timeoutS} s; raise --timeout`;
  if (!result.ok)
    return `QEMU exited with status ${result.exitCode}: ${result.stderr.trim().split('\n')[0] ?? ''}`;
  return undefined;
}

/** Runs `irb boot --timeline`: exit code as `irb boot` (the guest program's status of the last boot). */
export async function runTimeline(args: TimelineArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const { memoryMb, timeoutS } = args;
  const forwards = args.network === true || args.network === undefined ? [] : args.network.forwards;
  const runs: BootTimeline[] = [];
  for (let run = 1; run <= args.runs; run++) {
    if (!args.quiet) io.stderr.write(`irb: boot ${run} of ${args.runs}…\n`);
    // One boot per call, so a failed boot stops the series instead of repeating it N times.
    const report = await bootTimeline({
      ...(args.kernel !== undefined ? { kernel: args.kernel } : {}),
      arch: 'auto',
      initramfs: args.archive,
      memoryMb,
      timeoutMs: Math.round(timeoutS * 1000),
      append: args.kernelArgs,
      ...(args.network ? { net: args.network } : {}),
      ...(signal ? { signal } : {}),
    });
    if (args.verbose && run === 1) {
      io.stderr.write(`irb: ${report.last.command.join(' ')}\n`);
      // The user's forwards; the probe's own (to a closed guest port) comes after them.
      for (const forward of report.last.forwards.slice(0, forwards.length))
        io.stderr.write(`${forwardLine(forward)}\n`);
    }
    const why = failure(report.last, timeoutS, forwards.length > 0);
    if (why !== undefined) {
      const tail = report.last.output.trimEnd().split('\n').slice(-15);
      if (!args.quiet && tail.join('').trim() !== '') io.stderr.write(`${tail.join('\n')}\n`);
      io.stderr.write(`irb: error: boot ${run} of ${args.runs} failed: ${why}\n`);
      return EXIT.failure;
    }
    runs.push(report.runs[0]!);
  }
  const stats = timelineStats(runs);
  const status = runs.at(-1)?.exitStatus;
  if (args.json) io.stdout.write(`${JSON.stringify(timelineJson(args.archive, stats, status), null, 2)}\n`);
  else io.stdout.write(`${timelineText(args.archive, stats, status).join('\n')}\n`);
  if (status !== undefined && status !== 0)
    io.stderr.write(`irb: the guest program exited with status ${status}\n`);
  return status ?? EXIT.ok;
}
